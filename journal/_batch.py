"""`GroupCommitStore`: one writer task per store that commits the turns of many chats together,
and one reader task that reads back together the turns of chats resumed together.

Each chat still waits until its own turn is committed before it asks the next speaker; the
writer takes whatever turns are waiting (up to `max_batch`) and commits them in one transaction,
so a thousand chats cost a few syncs to disk per round instead of a thousand.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING, Any

from ._errors import JournalError, StoreUnavailableError
from ._forward import ForwardingStore
from ._store import (
    AcquireLease,
    AppendTurn,
    BatchOp,
    ChatStore,
    ReleaseLease,
    RenewLease,
    StartChat,
)

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Mapping, Sequence

    from ._records import (
        ChatDefinition,
        ChatLease,
        ChatSummary,
        Turn,
    )


class _Lane:
    """Requests waiting for the next batch, and the one task that serves them in batches.

    A plain list and one wake-up future instead of an `asyncio.Queue`: submitting is an append
    and, only when the task sleeps, one `set_result`; each request still has its own future, so
    a chat cancelled while it waits cancels nothing of the others.
    """

    __slots__ = ("_room", "_wake", "closed", "max_batch", "max_pending", "pending")

    def __init__(self, max_batch: int, max_pending: int) -> None:
        self.max_batch = max_batch
        self.max_pending = max_pending
        self.closed = False
        self.pending: list[tuple[Any, asyncio.Future[Any]]] = []
        self._wake: asyncio.Future[None] | None = None  # set while the task waits for work
        self._room: asyncio.Future[None] | None = None  # set while submitters wait for room

    async def submit(self, request: Any) -> Any:
        loop = asyncio.get_running_loop()
        while len(self.pending) >= self.max_pending:  # bounded: wait for the task to take some
            if self._room is None or self._room.done():
                self._room = loop.create_future()
            await asyncio.shield(self._room)
        if self.closed:
            raise _closed_error()
        future: asyncio.Future[Any] = loop.create_future()
        self.pending.append((request, future))
        wake = self._wake
        if wake is not None and not wake.done():
            wake.set_result(None)
        return await future

    async def serve(self, run: Callable[[list[Any]], Awaitable[Sequence[Any]]]) -> None:
        """Forever: take up to `max_batch` requests, `run` them, answer each (a JournalError
        raised by `run` answers the whole batch)."""
        loop = asyncio.get_running_loop()
        while True:
            while not self.pending:
                self._wake = loop.create_future()
                await self._wake
            batch = self.pending[: self.max_batch]
            del self.pending[: self.max_batch]
            self._free_room()
            try:
                outcome = await run([request for request, _ in batch])
            except asyncio.CancelledError:
                self.fail([future for _, future in batch])
                raise
            except JournalError as exc:  # the store failed: nothing of the batch was kept
                outcome = [exc] * len(batch)
            except Exception as exc:  # a bug, not the store: still answer everyone, go on
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for (_, future), result in zip(batch, outcome, strict=True):
                if future.done():  # its chat was cancelled while waiting
                    continue
                if isinstance(result, JournalError):
                    future.set_exception(result)
                else:
                    future.set_result(result)

    def _free_room(self) -> None:
        room = self._room
        if room is not None and not room.done():
            room.set_result(None)

    def fail(self, futures: Sequence[asyncio.Future[Any]] | None = None) -> None:
        """Accepted means answered: each waiting request gets the closed-store error (with no
        `futures`: every pending one, and the lane takes no more)."""
        if futures is None:
            self.closed = True
            self._free_room()
            futures, self.pending = [future for _, future in self.pending], []
        for future in futures:
            if not future.done():
                future.set_exception(_closed_error())


def _closed_error() -> StoreUnavailableError:
    return StoreUnavailableError(
        "The journal was closed before this request was served; nothing of it was kept.",
        store="GroupCommitStore",
    )


class GroupCommitStore(ForwardingStore):
    """Wraps a store; `append_turn`, `start_chat`, `acquire_lease`, `renew_lease` and
    `release_lease` join the next group commit; `turns(chat_id)`, `summary` and `definition`
    join the next batched read (`load_many`, `summaries`, `definitions`: chats resumed together
    are read together); everything else passes through.

    The lanes are bounded (`max_pending`): past it, a writer waits for room. A failure of a
    commit reaches every chat whose turn was in it, as the typed error the store raised.
    """

    def __init__(self, inner: ChatStore, *, max_batch: int = 512, max_pending: int = 4096) -> None:
        super().__init__(inner)
        self.max_batch = max_batch
        self._writes = _Lane(max_batch, max_pending)
        self._reads = _Lane(max_batch, max_pending)
        self._tasks: list[asyncio.Task[None]] = []
        self.batches = 0  # commits made, for benchmarks
        self.read_batches = 0  # batched reads made, for benchmarks

    async def open(self) -> None:
        await self.inner.open()
        if not self._tasks:
            loop = asyncio.get_running_loop()
            if self._writes.closed:  # opened again after aclose
                self._writes = _Lane(self.max_batch, self._writes.max_pending)
                self._reads = _Lane(self.max_batch, self._reads.max_pending)
            self._tasks = [
                loop.create_task(self._writes.serve(self._commit)),
                loop.create_task(self._reads.serve(self._load)),
            ]

    async def aclose(self) -> None:
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._writes.fail()
        self._reads.fail()
        await self.inner.aclose()

    async def _commit(self, ops: list[BatchOp]) -> list[Any]:
        outcome = await self.inner.write_batch(ops)
        self.batches += 1
        return outcome

    async def _load(self, requests: list[tuple[str, str]]) -> list[Any]:
        """A batch of reads, `(kind, chat_id)`: one batched read of the inner store per kind."""
        inner = self.inner
        found: dict[str, Mapping[str, Any]] = {}
        for kind in {kind for kind, _ in requests}:
            ids = [chat_id for k, chat_id in requests if k == kind]
            if kind == "turns":
                found[kind] = await inner.load_many(ids)
            elif kind == "summary":
                found[kind] = await inner.summaries(ids)
            else:
                found[kind] = await inner.definitions(ids)
        self.read_batches += 1
        return [found[kind][chat_id] for kind, chat_id in requests]

    async def _submit(self, op: BatchOp) -> Any:
        if not self._tasks:
            raise _closed_error()
        return await self._writes.submit(op)

    async def append_turn(
        self, chat_id: str, turn: Turn, *, lease: ChatLease | None = None
    ) -> None:
        await self._submit(AppendTurn(chat_id, turn, lease))

    async def start_chat(
        self, definition: ChatDefinition, owner: str, *, ttl: float
    ) -> ChatLease | None:
        lease: ChatLease | None = await self._submit(StartChat(definition, owner, ttl))
        return lease

    async def release_lease(self, lease: ChatLease) -> None:
        await self._submit(ReleaseLease(lease))

    async def acquire_lease(self, chat_id: str, owner: str, *, ttl: float) -> ChatLease:
        lease: ChatLease = await self._submit(AcquireLease(chat_id, owner, ttl))
        return lease

    async def renew_lease(self, lease: ChatLease, *, ttl: float) -> ChatLease:
        renewed: ChatLease = await self._submit(RenewLease(lease, ttl))
        return renewed

    async def turns(self, chat_id: str, *, after: int = 0) -> list[Turn]:
        if after or not self._tasks:
            return await self.inner.turns(chat_id, after=after)
        loaded: list[Turn] = await self._reads.submit(("turns", chat_id))
        return loaded

    async def summary(self, chat_id: str) -> ChatSummary:
        if not self._tasks:
            return await self.inner.summary(chat_id)
        found: ChatSummary = await self._reads.submit(("summary", chat_id))
        return found

    async def definition(self, chat_id: str) -> ChatDefinition:
        if not self._tasks:
            return await self.inner.definition(chat_id)
        found: ChatDefinition = await self._reads.submit(("definition", chat_id))
        return found
