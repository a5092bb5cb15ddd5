"""`InMemoryChatStore`: the journal in this process's memory, for tests and benchmarks.

It keeps the same rows as the database stores (JSON text and blobs), so limits, sizes and
decoding behave alike; it is lost with the process.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from ._errors import (
    ChatExistsError,
    ChatFinishedError,
    ChatNotFoundError,
    InputAlreadyAnsweredError,
    LeaseHeldError,
    LeaseLostError,
    TurnOrderError,
    UnknownInputTokenError,
)
from ._records import (
    ChatLease,
    ChatPage,
    ChatStatus,
    ChatSummary,
    JournalEvent,
    PendingInput,
    StoreStatistics,
)
from ._rows import (
    check_row_size,
    decode_data,
    decode_definition,
    decode_termination,
    decode_turn_row,
    encode_data,
    encode_definition,
    encode_termination,
    prepare_turn,
    rebuild_turn,
    turn_event,
)
from ._store import TERMINAL, ChatStore, check_page_limit, decode_cursor, encode_cursor

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from ._records import ChatDefinition, StoreLimits, Termination, Turn


@dataclass(slots=True, kw_only=True)
class _Chat:
    definition: str
    status: ChatStatus
    created_at: float
    updated_at: float
    tokens: int = 0
    cost: float = 0.0
    termination: str | None = None
    turns: list[str] = field(default_factory=list)
    events: list[tuple[str, str, float]] = field(default_factory=list)  # kind, data, at


class InMemoryChatStore(ChatStore):
    """The journal in a dict: every `ChatStore` behaviour, no durability."""

    def __init__(
        self, *, limits: StoreLimits | None = None, clock: Callable[[], float] = time.time
    ) -> None:
        super().__init__(limits=limits)
        self._clock = clock
        self._chats: dict[str, _Chat] = {}
        self._blobs: dict[str, bytes] = {}
        self._inputs: dict[str, PendingInput] = {}
        self._leases: dict[str, ChatLease] = {}
        self._fences: dict[str, int] = {}

    async def open(self) -> None:
        return None

    async def aclose(self) -> None:
        return None

    def _chat(self, chat_id: str) -> _Chat:
        chat = self._chats.get(chat_id)
        if chat is None:
            raise ChatNotFoundError(f"No chat {chat_id!r} is journaled.", chat_id=chat_id)
        return chat

    def _writable(self, chat_id: str, lease: ChatLease | None) -> _Chat:
        chat = self._chat(chat_id)
        if chat.status in TERMINAL:
            raise ChatFinishedError(f"Chat {chat_id!r} has {chat.status} already.", chat_id=chat_id)
        if lease is not None:
            held = self._leases.get(chat_id)
            if held is None or held.token != lease.token or held.expires_at <= self._clock():
                raise LeaseLostError(
                    f"The lease of {lease.owner!r} on chat {chat_id!r} expired or was taken over.",
                    chat_id=chat_id,
                )
        return chat

    def _stage_event(
        self, chat: _Chat, kind: str, data: Mapping[str, Any]
    ) -> tuple[str, str, float]:
        """An event row for `chat`, not yet appended (a test may make this fail mid-turn)."""
        return kind, encode_data(data, "event", self.limits), self._clock()

    async def create_chat(self, definition: ChatDefinition) -> None:
        text = encode_definition(definition, self.limits)
        if definition.chat_id in self._chats:
            raise ChatExistsError(
                f"Chat {definition.chat_id!r} is journaled already.", chat_id=definition.chat_id
            )
        now = self._clock()
        chat = _Chat(definition=text, status=ChatStatus.RUNNING, created_at=now, updated_at=now)
        chat.events.append(self._stage_event(chat, "chat.created", {"status": "running"}))
        self._chats[definition.chat_id] = chat

    async def definition(self, chat_id: str) -> ChatDefinition:
        return decode_definition(self._chat(chat_id).definition, chat_id)

    def _summary(self, chat_id: str, chat: _Chat) -> ChatSummary:
        return ChatSummary(
            chat_id=chat_id,
            status=chat.status,
            turns=len(chat.turns),
            tokens=chat.tokens,
            cost=chat.cost,
            created_at=chat.created_at,
            updated_at=chat.updated_at,
            termination=decode_termination(chat.termination, chat_id),
        )

    async def summary(self, chat_id: str) -> ChatSummary:
        return self._summary(chat_id, self._chat(chat_id))

    async def list_chats(
        self, *, status: ChatStatus | None = None, limit: int = 50, cursor: str | None = None
    ) -> ChatPage:
        check_page_limit(limit)
        keys = sorted(((c.created_at, i) for i, c in self._chats.items()), reverse=True)
        if cursor is not None:
            after = decode_cursor(cursor)
            keys = [k for k in keys if k < after]
        chosen = [k for k in keys if status is None or self._chats[k[1]].status == status]
        page = tuple(self._summary(i, self._chats[i]) for _, i in chosen[: limit + 1])
        more = len(page) > limit
        page = page[:limit]
        return ChatPage(chats=page, next_cursor=encode_cursor(page[-1]) if more else None)

    async def set_status(
        self,
        chat_id: str,
        status: ChatStatus,
        *,
        termination: Termination | None = None,
        lease: ChatLease | None = None,
    ) -> None:
        chat = self._writable(chat_id, lease)
        text = None if termination is None else encode_termination(termination, self.limits)
        event = self._stage_event(chat, "status", {"status": status.value})
        chat.status, chat.updated_at = status, self._clock()
        chat.termination = text if text is not None else chat.termination
        chat.events.append(event)

    async def append_turn(
        self, chat_id: str, turn: Turn, *, lease: ChatLease | None = None
    ) -> None:
        prepared = prepare_turn(turn, self.limits)
        chat = self._writable(chat_id, lease)
        expected = len(chat.turns) + 1
        if prepared.number != expected:
            raise TurnOrderError(
                f"Chat {chat_id!r} expects turn {expected} next, not {prepared.number}.",
                chat_id=chat_id,
                expected=expected,
                got=prepared.number,
            )
        finished = prepared.finished
        termination = None if finished is None else encode_termination(finished, self.limits)
        # Stage everything first; the commit below cannot fail, so there is never half a turn.
        events = [self._stage_event(chat, "turn", turn_event(prepared))]
        if finished is not None:
            events.append(self._stage_event(chat, "status", {"status": "finished"}))
        self._blobs.update(prepared.blobs)
        chat.turns.append(prepared.body)
        chat.tokens += prepared.tokens
        chat.cost += prepared.cost
        chat.updated_at = self._clock()
        chat.events.extend(events)
        if finished is not None:
            chat.status, chat.termination = ChatStatus.FINISHED, termination

    async def turns(self, chat_id: str, *, after: int = 0) -> list[Turn]:
        chat = self._chat(chat_id)
        rows = [
            decode_turn_row(body, chat_id, number)
            for number, body in enumerate(chat.turns, start=1)
            if number > after
        ]
        return [rebuild_turn(row, self._blobs, chat_id) for row in rows]

    async def blob(self, sha256: str) -> bytes:
        return self._blobs[sha256]

    async def append_event(self, chat_id: str, kind: str, data: Mapping[str, Any]) -> int:
        chat = self._chat(chat_id)
        chat.events.append(self._stage_event(chat, kind, data))
        return len(chat.events)

    async def events(
        self, chat_id: str, *, after: int = 0, limit: int = 1000
    ) -> list[JournalEvent]:
        chat = self._chat(chat_id)
        return [
            JournalEvent(
                chat_id=chat_id,
                id=i,
                kind=kind,
                data=decode_data(data, chat_id, f"event {i}"),
                at=at,
            )
            for i, (kind, data, at) in enumerate(chat.events, start=1)
            if i > after
        ][:limit]

    async def ask_input(
        self, chat_id: str, prompt: str, *, lease: ChatLease | None = None
    ) -> PendingInput:
        check_row_size(prompt, "question", self.limits)
        chat = self._writable(chat_id, lease)
        question = PendingInput(
            chat_id=chat_id,
            token=secrets.token_urlsafe(24),
            turn=len(chat.turns) + 1,
            prompt=prompt,
            asked_at=self._clock(),
        )
        event = self._stage_event(
            chat, "input.asked", {"token": question.token, "turn": question.turn}
        )
        self._inputs[question.token] = question
        chat.status, chat.updated_at = ChatStatus.WAITING, question.asked_at
        chat.events.append(event)
        return question

    async def answer_input(self, token: str, answer: str) -> PendingInput:
        check_row_size(answer, "answer", self.limits)
        question = self._inputs.get(token)
        if question is None:
            raise UnknownInputTokenError("No question carries this token.", token=token)
        if question.answer is not None:
            raise InputAlreadyAnsweredError(
                f"The question to chat {question.chat_id!r} was answered already.", token=token
            )
        answered = replace(question, answer=answer, answered_at=self._clock())
        chat = self._chat(question.chat_id)
        event = self._stage_event(chat, "input.answered", {"token": token, "turn": question.turn})
        self._inputs[token] = answered
        if chat.status is ChatStatus.WAITING:
            chat.status = ChatStatus.RUNNING
        chat.updated_at = answered.answered_at or chat.updated_at
        chat.events.append(event)
        return answered

    async def inputs(self, chat_id: str) -> list[PendingInput]:
        self._chat(chat_id)
        return sorted(
            (q for q in self._inputs.values() if q.chat_id == chat_id), key=lambda q: q.asked_at
        )

    async def acquire_lease(self, chat_id: str, owner: str, *, ttl: float) -> ChatLease:
        self._chat(chat_id)
        now = self._clock()
        held = self._leases.get(chat_id)
        if held is not None and held.expires_at > now and held.owner != owner:
            raise LeaseHeldError(
                f"Chat {chat_id!r} is leased to {held.owner!r} for"
                f" {held.expires_at - now:.1f} s more.",
                chat_id=chat_id,
                owner=held.owner,
                expires_at=held.expires_at,
            )
        fence = self._fences.get(chat_id, 0) + 1
        self._fences[chat_id] = fence
        lease = ChatLease(
            chat_id=chat_id,
            owner=owner,
            token=secrets.token_urlsafe(16),
            fence=fence,
            expires_at=now + ttl,
        )
        self._leases[chat_id] = lease
        return lease

    async def renew_lease(self, lease: ChatLease, *, ttl: float) -> ChatLease:
        held = self._leases.get(lease.chat_id)
        if held is None or held.token != lease.token:
            raise LeaseLostError(
                f"The lease of {lease.owner!r} on chat {lease.chat_id!r} was taken over"
                " or released.",
                chat_id=lease.chat_id,
            )
        renewed = replace(held, expires_at=self._clock() + ttl)
        self._leases[lease.chat_id] = renewed
        return renewed

    async def release_lease(self, lease: ChatLease) -> None:
        held = self._leases.get(lease.chat_id)
        if held is not None and held.token == lease.token:
            del self._leases[lease.chat_id]

    async def statistics(self) -> StoreStatistics:
        chats = self._chats.values()
        return StoreStatistics(
            chats=len(self._chats),
            turns=sum(len(c.turns) for c in chats),
            events=sum(len(c.events) for c in chats),
            blobs=len(self._blobs),
            blob_bytes=sum(len(b) for b in self._blobs.values()),
            row_bytes=sum(
                len(c.definition.encode())
                + sum(len(t.encode()) for t in c.turns)
                + sum(len(e[1].encode()) for e in c.events)
                for c in chats
            ),
        )
