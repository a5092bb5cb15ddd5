"""The executor actor: code runs as messages on the runtime, one session per key (e.g. a chat).

`register_executor(runtime, executor)` registers an agent type whose instance for key K holds
K's session (leased on K's first `RunCode`, released on `ReleaseSession`, passivation or stop),
so many chats send code concurrently while each chat's runs stay in order in its own sandbox.
"""

from __future__ import annotations

from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from moot.runtime import Agent, AgentContext, Envelope, handler

from ._keys import key_dir_name
from ._types import CodeBlock, CodeResult  # noqa: TC001 (pydantic resolves RunCode at runtime)

if TYPE_CHECKING:
    import os
    from collections.abc import Mapping

    from moot.runtime import AgentType, Runtime

    from ._base import Executor, ExecutorSession


@dataclass(frozen=True, slots=True, kw_only=True)
class RunCode:
    """Run `blocks` in order in this key's session; the reply is their `CodeResult`s."""

    blocks: tuple[CodeBlock, ...]
    timeout: float | None = None


@dataclass(frozen=True, slots=True)
class ReleaseSession:
    """Give this key's session back now (its files go with it) instead of at passivation."""


class ExecutorActor(Agent):
    """Holds one session of a shared executor for its key; see `register_executor`."""

    def __init__(self, context: AgentContext, executor: Executor, work_root: Path | None) -> None:
        super().__init__(context)
        self.executor = executor
        self.work_root = work_root
        self._stack: AsyncExitStack | None = None
        self._session: ExecutorSession | None = None

    async def _ensure_session(self) -> ExecutorSession:
        if self._session is None:
            work_dir = None
            if self.work_root is not None:
                work_dir = self.work_root / key_dir_name(self.id.key)
            stack = AsyncExitStack()
            self._session = await stack.enter_async_context(self.executor.session(work_dir))
            self._stack = stack
        return self._session

    async def _release(self) -> None:
        stack, self._stack, self._session = self._stack, None, None
        if stack is not None:
            await stack.aclose()

    @handler
    async def on_run(self, message: RunCode, ctx: Envelope) -> list[CodeResult]:
        session = await self._ensure_session()
        return await session.run_blocks(message.blocks, timeout=message.timeout)

    @handler
    async def on_release(self, message: ReleaseSession, ctx: Envelope) -> None:
        await self._release()

    async def on_passivate(self) -> Mapping[str, Any] | None:
        await self._release()
        return None


def register_executor(
    runtime: Runtime,
    executor: Executor,
    *,
    agent_type: str = "executor",
    work_root: str | os.PathLike[str] | None = None,
    idle_timeout: float | None = 600.0,
) -> AgentType:
    """Serve `executor` on `runtime` as actors of `agent_type`, one session per key.

    With `work_root`, key K's code sees `work_root / key_dir_name(K)` as its work dir (files sync
    back there); different keys never share a dir.
    The caller owns `executor` (keep it open while the runtime runs).

    Raises:
        RegistrationError: `agent_type` is taken or invalid.
    """
    root = Path(work_root) if work_root is not None else None
    return runtime.register(
        agent_type,
        lambda context: ExecutorActor(context, executor, root),
        idle_timeout=idle_timeout,
    )
