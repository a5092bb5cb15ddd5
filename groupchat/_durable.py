"""A group chat's journal: created (or found again) before any model call, one durable turn
before the next speaker is asked, and the history rebuilt from it on resume.

The manager calls three things: `open_group_journal` (before the chat starts), `record` (at the
end of each turn) and `close` (when the chat ends or fails). Everything else stays here.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import structlog

from moot.agents import HumanInputError, InputProvider, InputRequest
from moot.journal import (
    ChatDefinition,
    ChatFinishedError,
    ChatNotFoundError,
    ChatStore,
    ChatWriter,
    CodeRun,
    Decision,
    FileChange,
    InputAlreadyAnsweredError,
    Termination,
    Usage,
    begin_chat,
    replay_files,
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


@dataclass(slots=True, kw_only=True)
class GroupJournal:
    """One group chat run's journal: turns with the policy's decision, usage, code runs and
    work files (the lease and the numbering are the `ChatWriter`'s)."""

    writer: ChatWriter
    history: tuple[Message, ...] = ()  # rebuilt on resume: the opening message and every turn
    _spent: dict[str, tuple[int, float]] = field(default_factory=dict)

    @property
    def chat_id(self) -> str:
        return self.writer.chat_id

    @property
    def store(self) -> ChatStore:
        return self.writer.store

    @property
    def turns(self) -> int:
        return self.writer.turns

    @property
    def resumed(self) -> bool:
        return bool(self.history)

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
        content = message.get("content")
        code = _speaker_code(chat, speaker)
        runs: tuple[CodeRun, ...] = ()
        if isinstance(content, str):
            found = _EXITCODE.match(content)
            if found:
                runs = (
                    CodeRun(language="", code="", exit_code=int(found.group(1)), output=content),
                )
        turn = JournalTurn(
            number=0,
            speaker=speaker,
            message=message,
            decision=Decision(policy=policy, chosen=speaker, candidates=chat.participants),
            usage=self._usage(chat, speaker),
            code_runs=runs,
            files=() if code is None else await _work_file_changes(code),
            termination=None if reason is None else _termination(reason),
        )
        await self.writer.append(turn)

    async def restore_workspaces(self, chat: GroupChatState) -> None:
        """Before a resumed chat's next turn: each participant's work files as its journaled
        turns left them (the sandbox gets them from there with its next run)."""
        for name, agent in chat.agents.items():
            files = replay_files(self.writer.journaled, name)
            if not files:
                continue
            try:
                state = agent.chat_state(chat.chat_id)
            except Exception:  # not a moot agent, or its side lives elsewhere: nothing to restore
                continue
            if state.code is not None:
                await state.code.restore(files, state.stack)

    def _usage(self, chat: GroupChatState, speaker: str) -> Usage:
        agent = chat.agents.get(speaker)
        if agent is None:
            return Usage()
        try:
            tokens, cost = agent.chat_state(chat.chat_id).usage.totals()
        except Exception:  # no state, or not a moot agent: nothing to count
            return Usage()
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
        return await answer_through(
            self.store, self.chat_id, self.turns + 1, request, ask, lease=self.writer.lease
        )

    async def waiting_question(self) -> ChatWaitingForInputError | None:
        """The error for the question of the turn being taken, if it waits for an answer (a
        member on another worker asked it: its error reached this process untyped)."""
        number = self.turns + 1
        for question in await self.store.inputs(self.chat_id):
            if question.turn == number and question.answer is None:
                return waiting_error(self.chat_id, question.token, question.prompt)
        return None

    async def close(self, reason: StopReason | None) -> None:
        """Finish the chat (unless its last turn did), or leave it resumable; free the lease."""
        await self.writer.close(None if reason is None else _termination(reason))


def _speaker_code(chat: GroupChatState, speaker: str) -> Any:
    """The speaker's code execution in this chat (None: it runs no code here, or it is remote)."""
    agent = chat.agents.get(speaker)
    if agent is None:
        return None
    try:
        return agent.chat_state(chat.chat_id).code
    except Exception:  # not a moot agent, or its side lives on a worker
        return None


async def _work_file_changes(code: Any) -> tuple[FileChange, ...]:
    """The work files the speaker's code changed since its last journaled turn."""
    changes = await code.take_changes()
    return tuple(FileChange(path=path, data=data) for path, data in sorted(changes.items()))


async def answer_through(
    store: ChatStore,
    chat_id: str,
    number: int,
    request: InputRequest,
    ask: InputProvider,
    *,
    lease: ChatLease | None = None,
) -> str:
    """The answer to the question of turn `number`, journaled first and applied exactly once:
    an answer already in the journal (given from any process) wins; else `ask` may answer.

    Raises:
        ChatWaitingForInputError: nobody answered; answer it later, then resume.
    """
    asked = [q for q in await store.inputs(chat_id) if q.turn == number]
    question = asked[-1] if asked else None
    if question is not None and question.answer is not None:
        return question.answer
    if question is None:
        question = await store.ask_input(chat_id, request.prompt, lease=lease)
    try:
        text = await ask.get_input(request)
    except HumanInputError:
        raise waiting_error(chat_id, question.token, request.prompt) from None
    try:
        await store.answer_input(question.token, text)
    except InputAlreadyAnsweredError:  # answered elsewhere meanwhile: that answer holds
        current = [q for q in await store.inputs(chat_id) if q.token == question.token]
        return current[0].answer or text
    return text


def waiting_error(chat_id: str, token: str, prompt: str) -> ChatWaitingForInputError:
    """The error of a chat that waits for the answer to the question `token`."""
    return ChatWaitingForInputError(
        f"chat {chat_id!r} waits for a human: {prompt!r}",
        chat_id=chat_id,
        token=token,
        prompt=prompt,
    )


_ACTIVE: dict[str, GroupJournal] = {}  # journaled chats running in this process, by id


class JournaledInput(InputProvider):
    """An agent's input provider in journaled chats: each question waits in the journal, so a
    later process can answer it (see `GroupJournal.human_answer`); other chats ask `inner`.

    `store` is where a member on a worker finds a chat its manager runs in another process
    (the manager's store, e.g. one Postgres for every worker).
    """

    def __init__(self, inner: InputProvider, store: StoreOption = None) -> None:
        self.inner = inner
        self.store = store

    async def get_input(self, request: InputRequest) -> str:
        journal = None if request.chat_id is None else _ACTIVE.get(request.chat_id)
        if journal is not None:
            return await journal.human_answer(request, self.inner)
        if self.store is not None and self.store is not False and request.chat_id is not None:
            source: ChatStore | str | None = (
                None if self.store is True or self.store == DEFAULT else self.store
            )
            async with use_store(source) as store:
                try:
                    number = len(await store.turns(request.chat_id)) + 1
                except ChatNotFoundError:
                    number = 0  # not journaled: ask `inner` as usual
                if number:
                    return await answer_through(store, request.chat_id, number, request, self.inner)
        return await self.inner.get_input(request)


def journal_human_input(agents: Any, store: StoreOption = None) -> None:
    """Route the questions of agents that may ask a human through the journal (once each);
    with `store`, also those of chats whose manager runs in another process."""
    for agent in agents:
        if getattr(agent, "human_input_mode", "NEVER") == "NEVER":
            continue
        provider = agent.input_provider
        if not isinstance(provider, JournaledInput):
            agent.input_provider = JournaledInput(provider, store)
        elif store is not None and provider.store is None:
            provider.store = store


def group_chat_id(chat_id: str) -> str:
    """The journal id of the group chat an agent starts with `initiate_chat(manager, ...)`: its
    two-agent chat with the manager is journaled under `chat_id` itself."""
    return f"{chat_id}:group"


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
    key: str | None = None,
) -> Any:
    """Yield the chat's `GroupJournal` (None when journaling is off), created or resumed;
    `key` is the chat's id on the runtime when it differs from the journal's (see
    `group_chat_id`).

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
        active = key or chat_id
        _ACTIVE[active] = journal
        try:
            yield journal
        finally:
            _ACTIVE.pop(active, None)


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
    definition = ChatDefinition(
        chat_id=chat_id,
        participants=participants,
        policy=policy,
        limits={"max_round": max_round},
        spec={"kind": "group", "manager": manager, "opening": opening},
    )
    try:
        writer = await begin_chat(store, definition, owner, ttl=ttl, new=opening is not None)
    except ChatNotFoundError:
        raise GroupChatError(
            f"a group chat needs a first message or a history to resume (no journaled chat"
            f" {chat_id!r})"
        ) from None
    except ChatFinishedError as exc:
        raise ChatAlreadyFinishedError(str(exc), chat_id=chat_id) from None
    if writer.definition is None:  # a new chat
        return GroupJournal(writer=writer)
    try:
        messages = [t.message for t in writer.journaled]
        history = rebuild_history(writer.definition.spec, messages, manager)
    except BaseException:
        await writer.close(None)
        raise
    log.info("groupchat.resumed", chat_id=chat_id, turns=writer.turns)
    return GroupJournal(writer=writer, history=tuple(history))


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
