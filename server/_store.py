"""The server's view of the journal: the chats' own journal, with a word to the server on each
write, so readers wake and the chat's own rows stay the one source of truth.

The chats journal themselves (a group chat's `GroupJournal`, a pair's `TwoAgentJournal`); this
wrapper passes every call through and, after a write, calls `changed(chat_id)`; a turn that
reports a code run is followed by a `code.run` event. A definition the
server annotated before the chat started (its team, its token's hash) is merged into the
chat's own definition as it is created, so the one row carries both.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from moot.journal import ChatStore, ForwardingStore

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from moot.journal import (
        ChatDefinition,
        ChatLease,
        ChatStatus,
        PendingInput,
        Termination,
        Turn,
    )


class NotifyingStore(ForwardingStore):
    """Wraps the server's store: passes everything through, tells `changed` after each write
    and `turn_begins` before each turn is kept (the chat's streamed tokens end there)."""

    def __init__(
        self,
        inner: ChatStore,
        *,
        changed: Callable[[str], None],
        turn_begins: Callable[[str, int], None],
    ) -> None:
        super().__init__(inner)
        self._changed = changed
        self._turn_begins = turn_begins
        self._annotations: dict[str, dict[str, Any]] = {}
        self._created: dict[str, asyncio.Event] = {}

    def annotate(self, chat_id: str, spec: Mapping[str, Any]) -> asyncio.Event:
        """Merge `spec` into the chat's definition when the chat creates it; the event is set
        once the definition is journaled."""
        self._annotations[chat_id] = dict(spec)
        event = self._created[chat_id] = asyncio.Event()
        return event

    def forget(self, chat_id: str) -> None:
        """Drop an annotation whose chat will not start."""
        self._annotations.pop(chat_id, None)
        self._created.pop(chat_id, None)

    def _annotated(self, definition: ChatDefinition) -> ChatDefinition:
        extra = self._annotations.get(definition.chat_id)
        if extra is None:
            return definition
        return replace(definition, spec={**definition.spec, **extra})

    def _was_created(self, chat_id: str) -> None:
        self._annotations.pop(chat_id, None)
        event = self._created.pop(chat_id, None)
        if event is not None:
            event.set()
        self._changed(chat_id)

    # The owner opens and closes the inner store.
    async def open(self) -> None:
        return None

    async def aclose(self) -> None:
        return None

    async def create_chat(self, definition: ChatDefinition) -> None:
        await self.inner.create_chat(self._annotated(definition))
        self._was_created(definition.chat_id)

    async def start_chat(
        self, definition: ChatDefinition, owner: str, *, ttl: float
    ) -> ChatLease | None:
        lease = await self.inner.start_chat(self._annotated(definition), owner, ttl=ttl)
        if lease is not None:
            self._was_created(definition.chat_id)
        return lease

    async def append_turn(
        self, chat_id: str, turn: Turn, *, lease: ChatLease | None = None
    ) -> None:
        self._turn_begins(chat_id, turn.number)
        try:
            await self.inner.append_turn(chat_id, turn, lease=lease)
            for run in turn.code_runs:  # the console and AG-UI show each run as it happens
                await self.inner.append_event(
                    chat_id,
                    "code.run",
                    {"turn": turn.number, "exit_code": run.exit_code, "output": run.output[:4000]},
                )
        finally:
            self._changed(chat_id)

    async def set_status(
        self,
        chat_id: str,
        status: ChatStatus,
        *,
        termination: Termination | None = None,
        lease: ChatLease | None = None,
    ) -> None:
        try:
            await self.inner.set_status(chat_id, status, termination=termination, lease=lease)
        finally:
            self._changed(chat_id)

    async def append_event(self, chat_id: str, kind: str, data: Mapping[str, Any]) -> int:
        number = await self.inner.append_event(chat_id, kind, data)
        self._changed(chat_id)
        return number

    async def ask_input(
        self, chat_id: str, prompt: str, *, lease: ChatLease | None = None
    ) -> PendingInput:
        question = await self.inner.ask_input(chat_id, prompt, lease=lease)
        self._changed(chat_id)
        return question

    async def answer_input(self, token: str, answer: str) -> PendingInput:
        question = await self.inner.answer_input(token, answer)
        self._changed(question.chat_id)
        return question
