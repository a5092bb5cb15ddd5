"""How agents own resources: one way, for model clients and executors alike.

An agent shares two kinds of resource between its chats: its model client (a connection pool)
and its executor (e.g. a Docker container pool). Each is a `Lease`: the first holder opens it,
the last one closes it. A lease opens its value by entering an async context manager in a keeper
task of its own and exits it in that same task, because an executor holds task-bound scopes
(anyio task groups) while the chats that use it run in many tasks.

Holders are actors, and each keeps what it holds on an `AsyncExitStack`:

- a chat's participant actor holds, on its `ChatState.stack`, the leases the chat uses, its
  private workspace and (only with `lease="chat"`) its sandbox session; `CloseChat` unwinds it.
- the agent's `ResourceHolder` actor on each runtime holds every lease of the agent, so chats on
  one runtime share one connection pool and one container pool; the runtime's stop passivates
  it, which unwinds its stack and closes them.

A sandbox slot is not such a resource: by default a chat leases one per code run, inside the run
(`async with executor.session(workspace)`), so it is held only while code runs (see
`_code_execution`). There is no executor actor: the agents run code in their participant's turn,
and a session per key addressed over the runtime would be a second way to own the same thing.
"""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from moot.runtime import Agent, AgentContext, Envelope, handler

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Mapping
    from contextlib import AbstractAsyncContextManager

T = TypeVar("T")


@asynccontextmanager
async def borrowed(value: T) -> AsyncIterator[T]:
    """A value the user owns, as a lease's context: used as is, never closed by us."""
    yield value


class Lease(Generic[T]):
    """A resource shared by the holders that use it: opened on first `acquire`, closed when the
    last holder releases it, so nothing outlives the event loop it was opened in."""

    def __init__(self, open_value: Callable[[], AbstractAsyncContextManager[T]]) -> None:
        self._open = open_value
        self._value: T | None = None
        self._keeper: tuple[asyncio.Task[None], asyncio.Event] | None = None
        self._making: asyncio.Future[T] | None = None
        self._holders = 0

    @property
    def holders(self) -> int:
        return self._holders

    async def acquire(self) -> T:
        """The shared value (opened now if nobody holds it); pair with `release()`.

        Concurrent callers wait for one opening; if the caller opening it is cancelled, a waiter
        takes over. A failed opening raises its error in every waiting caller.
        """
        self._holders += 1
        try:
            while True:
                if self._value is not None:
                    return self._value
                making = self._making
                if making is None:
                    return await self._make_now()
                try:
                    return await asyncio.shield(making)
                except asyncio.CancelledError:
                    task = asyncio.current_task()
                    if making.cancelled() and (task is None or not task.cancelling()):
                        continue  # the opener was cancelled, not us: open it ourselves
                    raise
        except BaseException:
            self._holders -= 1
            raise

    async def _make_now(self) -> T:
        making: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._making = making
        try:
            value = await self._start_keeper()
        except asyncio.CancelledError:
            self._making = None
            making.cancel()
            raise
        except BaseException as exc:
            self._making = None
            making.set_exception(exc)
            making.exception()  # marked retrieved: each waiter re-raises it itself
            raise
        self._making = None
        self._value = value
        making.set_result(value)
        return value

    async def _start_keeper(self) -> T:
        """Enter the value's context in a task of its own; return once it is open."""
        loop = asyncio.get_running_loop()
        ready: asyncio.Future[T] = loop.create_future()
        closing = asyncio.Event()
        task = loop.create_task(self._keep(ready, closing))
        try:
            value = await asyncio.shield(ready)
        except BaseException:
            if ready.done():
                closing.set()  # opened after all: close it again
            else:
                task.cancel()  # the caller gave up: stop opening
            await asyncio.gather(task, return_exceptions=True)
            if ready.done() and not ready.cancelled():
                ready.exception()  # raised here already, or the caller gave up: retrieved
            raise
        self._keeper = (task, closing)
        return value

    async def _keep(self, ready: asyncio.Future[T], closing: asyncio.Event) -> None:
        try:
            async with self._open() as value:
                ready.set_result(value)
                await closing.wait()
        except asyncio.CancelledError:
            if not ready.done():
                ready.cancel()
            raise
        except BaseException as exc:
            if ready.done():
                raise
            ready.set_exception(exc)

    def hold(self) -> None:
        """Hold without opening the value: whatever holders open stays open until `release()`."""
        self._holders += 1

    async def release(self) -> None:
        """Drop one hold; the last one closes the value (in the task that opened it)."""
        self._holders -= 1
        if self._holders == 0 and self._keeper is not None:
            (task, closing), self._keeper, self._value = self._keeper, None, None
            closing.set()
            await task


async def hold(stack: AsyncExitStack, lease: Lease[T]) -> T:
    """Acquire `lease` for the owner of `stack`; unwinding the stack releases it."""
    value = await lease.acquire()
    stack.push_async_callback(lease.release)
    return value


class Holdable(Protocol):
    """What a `ResourceHolder` keeps open: a `Lease`, or an `McpServer` (see `_mcp`)."""

    def hold(self) -> None: ...

    async def release(self) -> None: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class Hold:
    """Ask an agent's `ResourceHolder` to keep the agent's leases open on this runtime."""


class ResourceHolder(Agent):
    """Keeps an agent's leases (model client, executor) open for as long as the runtime runs.

    Chats open them lazily and release them when they end; this actor's hold keeps them open
    between chats on the same runtime, and the runtime's stop passivates it, which releases them.
    """

    def __init__(self, context: AgentContext, leases: tuple[Holdable, ...]) -> None:
        super().__init__(context)
        self.leases = leases
        self.stack: AsyncExitStack | None = None

    @handler
    async def on_hold(self, message: Hold, ctx: Envelope) -> None:
        if self.stack is None:
            self.stack = AsyncExitStack()
            for lease in self.leases:
                lease.hold()
                self.stack.push_async_callback(lease.release)

    async def on_passivate(self) -> Mapping[str, Any] | None:
        stack, self.stack = self.stack, None
        if stack is not None:
            await stack.aclose()
        return None
