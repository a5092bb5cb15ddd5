"""`GroupCommitStore`: one writer task per store that commits the turns of many chats together.

Each chat still waits until its own turn is committed before it asks the next speaker; the
writer takes whatever turns are waiting (up to `max_batch`) and commits them in one transaction,
so a thousand chats cost a few syncs to disk per round instead of a thousand.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING, Any

from ._errors import JournalError, StoreUnavailableError
from ._store import AcquireLease, AppendTurn, BatchOp, ChatStore, ReleaseLease, StartChat

if TYPE_CHECKING:
    from collections.abc import Mapping

    from ._records import (
        ChatDefinition,
        ChatLease,
        ChatPage,
        ChatStatus,
        ChatSummary,
        JournalEvent,
        PendingInput,
        StoreStatistics,
        Termination,
        Turn,
    )

_Item = tuple[BatchOp, "asyncio.Future[Any]"]


class GroupCommitStore(ChatStore):
    """Wraps a store; `append_turn`, `start_chat`, `acquire_lease` and `release_lease` join the
    next group commit, everything else passes through.

    The queue is bounded (`max_pending`): past it, `append_turn` waits for room. A failure of a
    commit reaches every chat whose turn was in it, as the typed error the store raised.
    """

    def __init__(self, inner: ChatStore, *, max_batch: int = 512, max_pending: int = 4096) -> None:
        super().__init__(limits=inner.limits)
        self.inner = inner
        self.max_batch = max_batch
        self._queue: asyncio.Queue[_Item] = asyncio.Queue(max_pending)
        self._writer: asyncio.Task[None] | None = None
        self.batches = 0  # commits made, for benchmarks

    async def open(self) -> None:
        await self.inner.open()
        if self._writer is None:
            self._writer = asyncio.get_running_loop().create_task(self._write_loop())

    async def aclose(self) -> None:
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await writer
        while not self._queue.empty():  # accepted means answered
            _, future = self._queue.get_nowait()
            if not future.done():
                future.set_exception(self._closed())
        await self.inner.aclose()

    def _closed(self) -> StoreUnavailableError:
        return StoreUnavailableError(
            "The journal was closed before this turn was committed; nothing of it was kept.",
            store=type(self.inner).__name__,
        )

    async def _submit(self, op: BatchOp) -> Any:
        if self._writer is None:
            raise self._closed()
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        await self._queue.put((op, future))
        return await future

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

    async def _write_loop(self) -> None:
        queue = self._queue
        while True:
            batch = [await queue.get()]
            while len(batch) < self.max_batch and not queue.empty():
                batch.append(queue.get_nowait())
            try:
                outcome = await self.inner.write_batch([op for op, _ in batch])
            except asyncio.CancelledError:
                for _, future in batch:
                    if not future.done():
                        future.set_exception(self._closed())
                raise
            except JournalError as exc:  # the store failed: nothing of the batch was kept
                outcome = [exc] * len(batch)
            self.batches += 1
            for (_, future), result in zip(batch, outcome, strict=True):
                if future.done():  # its chat was cancelled while waiting
                    continue
                if isinstance(result, JournalError):
                    future.set_exception(result)
                else:
                    future.set_result(result)

    # -- everything else passes through ------------------------------------------------------

    async def create_chat(self, definition: ChatDefinition) -> None:
        await self.inner.create_chat(definition)

    async def definition(self, chat_id: str) -> ChatDefinition:
        return await self.inner.definition(chat_id)

    async def summary(self, chat_id: str) -> ChatSummary:
        return await self.inner.summary(chat_id)

    async def list_chats(
        self, *, status: ChatStatus | None = None, limit: int = 50, cursor: str | None = None
    ) -> ChatPage:
        return await self.inner.list_chats(status=status, limit=limit, cursor=cursor)

    async def set_status(
        self,
        chat_id: str,
        status: ChatStatus,
        *,
        termination: Termination | None = None,
        lease: ChatLease | None = None,
    ) -> None:
        await self.inner.set_status(chat_id, status, termination=termination, lease=lease)

    async def turns(self, chat_id: str, *, after: int = 0) -> list[Turn]:
        return await self.inner.turns(chat_id, after=after)

    async def blob(self, sha256: str) -> bytes:
        return await self.inner.blob(sha256)

    async def append_event(self, chat_id: str, kind: str, data: Mapping[str, Any]) -> int:
        return await self.inner.append_event(chat_id, kind, data)

    async def events(
        self, chat_id: str, *, after: int = 0, limit: int = 1000
    ) -> list[JournalEvent]:
        return await self.inner.events(chat_id, after=after, limit=limit)

    async def ask_input(
        self, chat_id: str, prompt: str, *, lease: ChatLease | None = None
    ) -> PendingInput:
        return await self.inner.ask_input(chat_id, prompt, lease=lease)

    async def answer_input(self, token: str, answer: str) -> PendingInput:
        return await self.inner.answer_input(token, answer)

    async def inputs(self, chat_id: str) -> list[PendingInput]:
        return await self.inner.inputs(chat_id)

    async def acquire_lease(self, chat_id: str, owner: str, *, ttl: float) -> ChatLease:
        lease: ChatLease = await self._submit(AcquireLease(chat_id, owner, ttl))
        return lease

    async def renew_lease(self, lease: ChatLease, *, ttl: float) -> ChatLease:
        return await self.inner.renew_lease(lease, ttl=ttl)

    async def statistics(self) -> StoreStatistics:
        return await self.inner.statistics()
