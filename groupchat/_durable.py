"""A group chat's journal: created (or found again) before any model call, one durable turn
before the next speaker is asked, and the history rebuilt from it on resume.

The manager calls three things: `open_group_journal` (before the chat starts), `record` (at the
end of each turn) and `close` (when the chat ends or fails). Everything else stays here.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import structlog

from moot.agents import HumanInputError, InputProvider, InputRequest
from moot.journal import (
    ChatDefinition,
    ChatNotFoundError,
    ChatStatus,
    ChatStore,
    CodeRun,
    Decision,
    InputAlreadyAnsweredError,
    JournalError,
    Termination,
    Usage,
    use_store,
)
from moot.journal import Turn as JournalTurn

from ._errors import ChatAlreadyFinishedError, ChatWaitingForInputError, GroupChatError

if TYPE_CHECKING:
    from contextlib import AbstractAsyncContextManager

    from moot.journal import ChatLease

    from ._state import GroupChatState, StopReason

log = structlog.get_logger("moot.groupchat.journal")

Message = dict[str, Any]
_EXITCODE = re.compile(r"^exitcode: (-?\d+)")

#: What `store=` takes: a store, a URL, None/False for no journal, or "default".
StoreOption = ChatStore | str | bool | None
DEFAULT = "default"


def lease_owner() -> str:
    """A lease holder's name: this host and process, and a random part per manager."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


@dataclass(slots=True, kw_only=True)
class GroupJournal:
    """One chat run's writer: holds the lease, numbers the turns, finishes the chat."""

    store: ChatStore
    chat_id: str
    lease: ChatLease
    ttl: float
    turns: int = 0  # journaled so far
    history: tuple[Message, ...] = ()  # rebuilt on resume: the opening message and every turn
    finished: bool = False
    _spent: dict[str, tuple[int, float]] = field(default_factory=dict)

    @property
    def resumed(self) -> bool:
        return bool(self.history)

    async def _keep_lease(self) -> None:
        """Renew the lease once half its TTL is gone; a chat renews as it journals its turns
        (no task or timer per chat). A turn longer than the TTL may lose the chat to another
        process, which the fence then stops from writing twice: set `lease_ttl` above it."""
        if time.time() > self.lease.expires_at - self.ttl / 2:
            self.lease = await self.store.renew_lease(self.lease, ttl=self.ttl)

    async def record(
        self,
        chat: GroupChatState,
        speaker: str,
        message: Message,
        policy: str,
        reason: StopReason | None,
    ) -> None:
        """Journal the turn just taken; returns once it is durable (the next speaker waits).

        Raises:
            JournalError: the store refused or lost the turn; nothing of it was kept.
        """
        await self._keep_lease()
        number = self.turns + 1
        content = message.get("content")
        runs: tuple[CodeRun, ...] = ()
        if isinstance(content, str):
            found = _EXITCODE.match(content)
            if found:
                runs = (
                    CodeRun(language="", code="", exit_code=int(found.group(1)), output=content),
                )
        turn = JournalTurn(
            number=number,
            speaker=speaker,
            message=message,
            decision=Decision(policy=policy, chosen=speaker, candidates=chat.participants),
            usage=self._usage(chat, speaker),
            code_runs=runs,
            termination=None if reason is None else _termination(reason),
        )
        await self.store.append_turn(self.chat_id, turn, lease=self.lease)
        self.turns = number
        self.finished = reason is not None

    def _usage(self, chat: GroupChatState, speaker: str) -> Usage:
        agent = chat.agents.get(speaker)
        if agent is None:
            return Usage()
        try:
            summary = agent.chat_state(chat.chat_id).usage.summary()
        except Exception:  # no state, or not a moot agent: nothing to count
            return Usage()
        tokens, cost = int(summary.total_tokens), float(summary.total_cost)
        before = self._spent.get(speaker, (0, 0.0))
        self._spent[speaker] = (tokens, cost)
        return Usage(completion_tokens=max(0, tokens - before[0]), cost=max(0.0, cost - before[1]))

    async def human_answer(self, request: InputRequest, ask: InputProvider) -> str:
        """The answer to a question asked in the turn being taken, applied exactly once.

        The question is journaled first (the chat is `waiting`); then `ask` (the agent's own
        provider) may answer it here. An answer given from anywhere else is used instead, on
        resume. With no answer, the chat stops and waits in the journal.

        Raises:
            ChatWaitingForInputError: nobody answered; answer it later, then resume.
        """
        number = self.turns + 1
        asked = [q for q in await self.store.inputs(self.chat_id) if q.turn == number]
        question = asked[-1] if asked else None
        if question is not None and question.answer is not None:
            return question.answer
        if question is None:
            question = await self.store.ask_input(self.chat_id, request.prompt, lease=self.lease)
        try:
            text = await ask.get_input(request)
        except HumanInputError:
            raise ChatWaitingForInputError(
                f"chat {self.chat_id!r} waits for a human: {request.prompt!r}",
                chat_id=self.chat_id,
                token=question.token,
                prompt=request.prompt,
            ) from None
        try:
            await self.store.answer_input(question.token, text)
        except InputAlreadyAnsweredError:  # answered elsewhere meanwhile: that answer holds
            current = [
                q for q in await self.store.inputs(self.chat_id) if q.token == question.token
            ]
            return current[0].answer or text
        return text

    async def close(self, reason: StopReason | None) -> None:
        """Finish the chat (unless its last turn did), or leave it resumable; free the lease."""
        try:
            if reason is not None and not self.finished:
                await self.store.set_status(
                    self.chat_id,
                    ChatStatus.FINISHED,
                    termination=_termination(reason),
                    lease=self.lease,
                )
                self.finished = True
        finally:
            with contextlib.suppress(JournalError, OSError):
                await self.store.release_lease(self.lease)


_ACTIVE: dict[str, GroupJournal] = {}  # journaled chats running in this process, by id


class JournaledInput(InputProvider):
    """An agent's input provider in journaled chats: each question waits in the journal, so a
    later process can answer it (see `GroupJournal.human_answer`); other chats ask `inner`."""

    def __init__(self, inner: InputProvider) -> None:
        self.inner = inner

    async def get_input(self, request: InputRequest) -> str:
        journal = None if request.chat_id is None else _ACTIVE.get(request.chat_id)
        if journal is None:
            return await self.inner.get_input(request)
        return await journal.human_answer(request, self.inner)


def journal_human_input(agents: Any) -> None:
    """Route the questions of agents that may ask a human through the journal (once each)."""
    for agent in agents:
        if getattr(agent, "human_input_mode", "NEVER") == "NEVER":
            continue
        if not isinstance(agent.input_provider, JournaledInput):
            agent.input_provider = JournaledInput(agent.input_provider)


def _termination(reason: StopReason) -> Termination:
    return Termination(reason=reason.condition, detail=reason.detail)


@contextlib.asynccontextmanager
async def group_journal(
    option: StoreOption,
    *,
    chat_id: str,
    manager: str,
    participants: tuple[str, ...],
    policy: str,
    max_round: int,
    opening: Message | None,
    ttl: float,
    owner: str,
) -> Any:
    """Yield the chat's `GroupJournal` (None when journaling is off), created or resumed.

    Raises:
        StoreUnavailableError: the store cannot be reached (before any model call).
        LeaseHeldError: another process runs this chat now.
        ChatAlreadyFinishedError: the chat finished already.
        GroupChatError: a new chat without an opening message.
    """
    if option is None or option is False:
        yield None
        return
    source: ChatStore | str | None = None if option is True or option == DEFAULT else option
    opened: AbstractAsyncContextManager[ChatStore] = use_store(source)
    async with opened as store:
        journal = await _begin(
            store, chat_id, manager, participants, policy, max_round, opening, ttl, owner
        )
        _ACTIVE[chat_id] = journal
        try:
            yield journal
        finally:
            _ACTIVE.pop(chat_id, None)


async def _begin(
    store: ChatStore,
    chat_id: str,
    manager: str,
    participants: tuple[str, ...],
    policy: str,
    max_round: int,
    opening: Message | None,
    ttl: float,
    owner: str,
) -> GroupJournal:
    if opening is not None:
        lease = await store.start_chat(
            ChatDefinition(
                chat_id=chat_id,
                participants=participants,
                policy=policy,
                limits={"max_round": max_round},
                spec={"kind": "group", "manager": manager, "opening": opening},
            ),
            owner,
            ttl=ttl,
        )
        if lease is not None:
            return GroupJournal(store=store, chat_id=chat_id, lease=lease, ttl=ttl)
    try:
        summary = await store.summary(chat_id)
    except ChatNotFoundError:
        raise GroupChatError(
            f"a group chat needs a first message or a history to resume (no journaled chat"
            f" {chat_id!r})"
        ) from None
    if summary.status in (ChatStatus.FINISHED, ChatStatus.FAILED):
        raise ChatAlreadyFinishedError(
            f"chat {chat_id!r} has {summary.status} already; read it with `moot chats show`",
            chat_id=chat_id,
        )
    lease = await store.acquire_lease(chat_id, owner, ttl=ttl)
    try:
        definition = await store.definition(chat_id)
        turns = await store.turns(chat_id)
        history = rebuild_history(definition.spec, [t.message for t in turns], manager)
    except BaseException:
        await store.release_lease(lease)
        raise
    log.info("groupchat.resumed", chat_id=chat_id, turns=len(turns))
    return GroupJournal(
        store=store, chat_id=chat_id, lease=lease, ttl=ttl, turns=len(turns), history=tuple(history)
    )


def rebuild_history(
    spec: Mapping[str, Any], messages: list[Message], manager: str
) -> list[Message]:
    """The group's messages from the journal: the opening one, then each turn's (and the
    manager's answer to a handoff, which is not a turn of its own)."""
    from ._manager import _handoff_ack  # one definition of the answer

    opening = spec.get("opening")
    history: list[Message] = [dict(opening)] if isinstance(opening, Mapping) else []
    for message in messages:
        history.append(dict(message))
        if message.get("tool_calls"):
            ack = _handoff_ack(dict(message), manager)
            if ack is not None:
                history.append(ack)
    return history
