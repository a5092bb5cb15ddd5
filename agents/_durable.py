"""A two-agent chat's journal: each message exchanged is a turn, durable before the other side
is asked to reply; `initiate_chat(..., chat_id=...)` of a journaled chat rebuilds both sides'
threads from it and goes on, without asking any model again for a completed turn.

`run_two_agent_chat` calls `two_agent_journal` (before the first message), `record` (after
each message) and `close` (at the end); the seeding of a resumed chat is `resume_states`.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from moot.journal import (
    ChatDefinition,
    ChatFinishedError,
    ChatStatus,
    ChatStore,
    JournalError,
    Termination,
    use_store,
)
from moot.journal import Turn as JournalTurn

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from moot.journal import ChatLease

    from ._chat import ChatState
    from ._conversable import ConversableAgent

Message = dict[str, Any]

#: What `store=` takes: a store, a URL, None/False for no journal, or "default".
StoreOption = ChatStore | str | bool | None


@dataclass(slots=True, kw_only=True)
class TwoAgentJournal:
    """One two-agent chat run's writer: holds the lease, numbers the messages."""

    store: ChatStore
    chat_id: str
    lease: ChatLease
    ttl: float
    turns: int = 0
    history: tuple[Message, ...] = ()  # on resume: every message so far, in order

    async def record(self, speaker: str, message: Message) -> None:
        """Journal one message; returns once it is durable.

        Raises:
            JournalError: the store refused or lost it; nothing of it was kept.
        """
        if time.time() > self.lease.expires_at - self.ttl / 2:
            self.lease = await self.store.renew_lease(self.lease, ttl=self.ttl)
        number = self.turns + 1
        turn = JournalTurn(number=number, speaker=speaker, message=dict(message))
        await self.store.append_turn(self.chat_id, turn, lease=self.lease)
        self.turns = number

    async def close(self, finished: bool) -> None:
        """Finish the chat (or leave it resumable after an error) and free the lease."""
        try:
            if finished:
                await self.store.set_status(
                    self.chat_id,
                    ChatStatus.FINISHED,
                    termination=Termination(reason="ended"),
                    lease=self.lease,
                )
        finally:
            with contextlib.suppress(JournalError, OSError):
                await self.store.release_lease(self.lease)


@contextlib.asynccontextmanager
async def two_agent_journal(
    option: StoreOption,
    *,
    chat_id: str,
    initiator: str,
    recipient: str,
    max_turns: int | None,
    ttl: float = 30.0,
) -> AsyncIterator[TwoAgentJournal | None]:
    """The chat's journal (None when journaling is off), started or resumed.

    Raises:
        StoreUnavailableError: the store cannot be reached (before any model call).
        LeaseHeldError: another process runs this chat now.
        ChatFinishedError: the chat finished already.
    """
    if option is None or option is False:
        yield None
        return
    source = None if option is True or option == "default" else option
    async with use_store(source) as store:
        owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        definition = ChatDefinition(
            chat_id=chat_id,
            participants=(initiator, recipient),
            policy="two_agent",
            limits={"max_turns": max_turns},
            spec={"kind": "two_agent"},
        )
        lease = await store.start_chat(definition, owner, ttl=ttl)
        if lease is not None:
            yield TwoAgentJournal(store=store, chat_id=chat_id, lease=lease, ttl=ttl)
            return
        summary = await store.summary(chat_id)
        if summary.status in (ChatStatus.FINISHED, ChatStatus.FAILED):
            raise ChatFinishedError(
                f"chat {chat_id!r} has {summary.status} already; read it with `moot chats show`",
                chat_id=chat_id,
            )
        lease = await store.acquire_lease(chat_id, owner, ttl=ttl)
        try:
            turns = await store.turns(chat_id)
        except BaseException:
            await store.release_lease(lease)
            raise
        yield TwoAgentJournal(
            store=store,
            chat_id=chat_id,
            lease=lease,
            ttl=ttl,
            turns=len(turns),
            history=tuple(turn.message for turn in turns),
        )


def resume_states(
    journal: TwoAgentJournal,
    initiator: ConversableAgent,
    recipient: ConversableAgent,
    first: ChatState,
    second: ChatState,
) -> tuple[Message, bool]:
    """Seed both sides' threads from the journal; the last message and whether the initiator
    sent it. The side that is to reply gets every message but the last (the next `Turn` brings
    it), the other side gets them all; each side's auto-reply count is its replies so far."""
    history = journal.history
    *earlier, last = history
    by_initiator = len(history) % 2 == 1  # messages alternate, the initiator's first
    speaker_state, listener_state = (first, second) if by_initiator else (second, first)
    for state, messages in ((speaker_state, history), (listener_state, earlier)):
        owner = state.owner.name
        state.messages.extend(_view(messages, owner))
    first.consecutive_auto_reply = sum(1 for m in history[1:] if m.get("name") == initiator.name)
    second.consecutive_auto_reply = sum(1 for m in history if m.get("name") == recipient.name)
    return dict(last), by_initiator


def _view(messages: Any, name: str) -> list[Message]:
    """The thread as `name` keeps it: its own messages as the assistant's."""
    out: list[Message] = []
    for message in messages:
        if message.get("role") in ("tool", "function"):
            out.append(dict(message))
        else:
            mine = message.get("name") == name or bool(message.get("tool_calls"))
            out.append({**message, "role": "assistant" if mine else "user"})
    return out
