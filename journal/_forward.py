"""`ForwardingStore`: a `ChatStore` that hands every call to another store.

Wrappers (the group commit, the server's notifying view) subclass it and override only what
they change, so a method added to `ChatStore` reaches the inner store without a copy per wrapper.
Batched writes, `start_chat` and `workspace` are not forwarded: the base versions call this
store's own methods, so a wrapper's overrides see every write.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._store import ChatStore

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from ._errors import JournalError
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


class ForwardingStore(ChatStore):
    """Passes every call to `inner`, with `inner`'s limits; subclass it to change a few."""

    def __init__(self, inner: ChatStore) -> None:
        super().__init__(limits=inner.limits)
        self.inner = inner

    async def open(self) -> None:
        await self.inner.open()

    async def aclose(self) -> None:
        await self.inner.aclose()

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

    async def append_turn(
        self, chat_id: str, turn: Turn, *, lease: ChatLease | None = None
    ) -> None:
        await self.inner.append_turn(chat_id, turn, lease=lease)

    async def turns(self, chat_id: str, *, after: int = 0) -> list[Turn]:
        return await self.inner.turns(chat_id, after=after)

    async def load_many(self, chat_ids: Sequence[str]) -> dict[str, list[Turn] | JournalError]:
        return await self.inner.load_many(chat_ids)

    async def summaries(self, chat_ids: Sequence[str]) -> dict[str, ChatSummary | JournalError]:
        return await self.inner.summaries(chat_ids)

    async def definitions(
        self, chat_ids: Sequence[str]
    ) -> dict[str, ChatDefinition | JournalError]:
        return await self.inner.definitions(chat_ids)

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
        return await self.inner.acquire_lease(chat_id, owner, ttl=ttl)

    async def renew_lease(self, lease: ChatLease, *, ttl: float) -> ChatLease:
        return await self.inner.renew_lease(lease, ttl=ttl)

    async def release_lease(self, lease: ChatLease) -> None:
        await self.inner.release_lease(lease)

    async def statistics(self) -> StoreStatistics:
        return await self.inner.statistics()
