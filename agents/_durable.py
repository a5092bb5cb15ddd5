"""A two-agent chat's journal: each message exchanged is a turn, durable before the other side
is asked to reply; `initiate_chat(..., chat_id=...)` of a journaled chat rebuilds both sides'
threads from it and goes on, without asking any model again for a completed turn.

`run_two_agent_chat` calls `two_agent_journal` (before the first message), `record` (after
each message) and `close` (at the end); the seeding of a resumed chat is `resume_states`.
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from moot.journal import (
    ChatDefinition,
    ChatStore,
    ChatWriter,
    CodeRun,
    FileChange,
    Termination,
    Usage,
    begin_chat,
    lease_owner,
    replay_files,
    use_store,
)
from moot.journal import Turn as JournalTurn

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from ._chat import ChatState
    from ._conversable import ConversableAgent

Message = dict[str, Any]

#: What `store=` takes: a store, a URL, None/False for no journal, or "default".
StoreOption = ChatStore | str | bool | None

_EXITCODE = re.compile(r"^exitcode: (-?\d+)")


@dataclass(slots=True, kw_only=True)
class TwoAgentJournal:
    """One two-agent chat run's journal: each message is a turn with its speaker's model usage
    and code run (the lease and the numbering are the `ChatWriter`'s)."""

    writer: ChatWriter
    _spent: dict[str, tuple[int, int, float]] = field(default_factory=dict)

    @property
    def history(self) -> tuple[Message, ...]:
        """On resume: every message so far, in order."""
        return tuple(turn.message for turn in self.writer.journaled)

    async def record(self, speaker: str, message: Message, state: ChatState | None = None) -> None:
        """Journal one message, with the model usage `state` (the speaker's side) spent on it
        and the work files its code run changed; returns once it is durable.

        Raises:
            JournalError: the store refused or lost it; nothing of it was kept.
        """
        files = await work_file_changes(state)
        turn = JournalTurn(
            number=0,
            speaker=speaker,
            message=dict(message),
            usage=self._usage(state),
            code_runs=code_runs(message),
            files=files,
        )
        await self.writer.append(turn)

    def _usage(self, state: ChatState | None) -> Usage:
        """What `state`'s side spent since its last journaled turn (nothing for a side that
        lives on a worker: its usage is counted there)."""
        if state is None:
            return Usage()
        summary = state.usage.summary()
        now = (summary.prompt_tokens, summary.completion_tokens, summary.total_cost)
        before = self._spent.get(state.owner.name, (0, 0, 0.0))
        self._spent[state.owner.name] = now
        return Usage(
            prompt_tokens=max(0, now[0] - before[0]),
            completion_tokens=max(0, now[1] - before[1]),
            cost=max(0.0, now[2] - before[2]),
        )

    async def restore_workspaces(self, *states: ChatState) -> None:
        """Before a resumed chat goes on: each side's work files as its journaled turns left
        them (the sandbox gets them from there with its next run)."""
        await restore_workspaces(self.writer, states)

    async def close(self, finished: bool) -> None:
        """Finish the chat (or leave it resumable after an error) and free the lease."""
        await self.writer.close(Termination(reason="ended") if finished else None)


def code_runs(message: Message) -> tuple[CodeRun, ...]:
    """The code run a message reports (`exitcode: N` first, then its output), if any."""
    content = message.get("content")
    found = _EXITCODE.match(content) if isinstance(content, str) else None
    if found is None or not isinstance(content, str):
        return ()
    output = content.partition("\n")[2]
    return (CodeRun(language="", code="", exit_code=int(found.group(1)), output=output),)


async def work_file_changes(state: ChatState | None) -> tuple[FileChange, ...]:
    """The work files `state`'s code changed since its last journaled turn, as records."""
    if state is None or state.code is None:
        return ()
    changes = await state.code.take_changes()
    return tuple(FileChange(path=path, data=data) for path, data in sorted(changes.items()))


async def restore_workspaces(writer: ChatWriter, states: Any) -> None:
    """Restore each chat side's workspace from its own journaled turns (one agent's files never
    land in another's workspace)."""
    for state in states:
        if state.code is None:
            continue
        files = replay_files(writer.journaled, state.owner.name)
        if files:
            await state.code.restore(files, state.stack)


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
        definition = ChatDefinition(
            chat_id=chat_id,
            participants=(initiator, recipient),
            policy="two_agent",
            limits={"max_turns": max_turns},
            spec={"kind": "two_agent"},
        )
        writer = await begin_chat(store, definition, lease_owner(), ttl=ttl)
        yield TwoAgentJournal(writer=writer)


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
