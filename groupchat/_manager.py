"""`GroupChatManager`: AutoGen's classic group chat on moot's actors.

`GroupChat` (in `_group`) holds the settings and is shared by every chat that uses it.
`GroupChatManager` is a `ConversableAgent`; each chat it runs
is its participant actor for that chat id, which asks the chosen speaker's participant actor for
a `Turn` and sends each reply on to everyone else. Per-chat state (history, counters, usage)
lives with the chat, so many chats run at once over the same agent objects.
"""

from __future__ import annotations

import asyncio
import copy
import json
import re
import sys
import weakref
from collections import OrderedDict
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Literal, cast

import structlog

from moot import observability
from moot.agents import (
    AgentError,
    ChatResult,
    CloseChat,
    ConversableAgent,
    InputRequest,
    IOStream,
    Turn,
    TurnReply,
    default_is_termination_msg,
    new_chat_id,
    print_message,
    run_sync,
    runtime_scope,
)
from moot.agents.distributed import is_distributed
from moot.journal import lease_owner
from moot.models import ModelResponse, Usage, UsageSummary
from moot.runtime import DeadlineExceededError, DeliveryError, HandlerError

from ._actor import ManagerParticipant, RunGroupChat
from ._durable import (
    DEFAULT,
    GroupJournal,
    StoreOption,
    group_chat_id,
    group_journal,
    journal_human_input,
)
from ._errors import AgentNameConflictError, GroupChatError
from ._events import (
    ChatEvent,
    CodeRunEvent,
    EventSink,
    MessageEvent,
    TerminationEvent,
    ToolCallEvent,
    event_channel,
)
from ._selector import selected_event
from ._state import (
    HANDOFF_PREFIX,
    GroupChatState,
    NoSpeaker,
    StopReason,
)
from ._terminations import MaxMessages, MessagePredicate, Termination

if TYPE_CHECKING:
    from contextlib import AbstractAsyncContextManager
    from types import EllipsisType

    from moot.agents import ChatState, InputProvider
    from moot.models import LLMConfig, ModelClient
    from moot.runtime import AgentContext, AgentId, Runtime

    from ._group import GroupChat

log = structlog.get_logger("moot.agents.groupchat")

Message = dict[str, Any]
_EXITCODE = re.compile(r"^exitcode: (-?\d+)")
_TERMINATE_TAIL = re.compile(r"\bTERMINATE\W*$")


@dataclass(frozen=True, slots=True, kw_only=True)
class GroupChatResult:
    """One finished group chat: its history, why it ended, and what its model calls used."""

    chat_id: str
    chat_history: list[Message]
    stop_reason: StopReason
    turns: int
    last_speaker: str | None
    usage: Usage
    cost: float

    @property
    def summary(self) -> str:
        """The last message's text, without a closing TERMINATE."""
        for message in reversed(self.chat_history):
            content = message.get("content")
            if isinstance(content, str) and content.strip():
                return _TERMINATE_TAIL.sub("", content.strip()).strip()
        return ""

    @property
    def messages(self) -> list[Message]:
        """The history (AutoGen's `RunResponse.messages`)."""
        return self.chat_history

    def process(self) -> None:
        """Show the conversation on the default `IOStream` (AutoGen's `RunResponse.process`)."""
        for message in self.chat_history:
            print_message(str(message.get("name", "")), "chat_manager", message)

    def to_state(self) -> dict[str, Any]:
        """A JSON-ready snapshot that `GroupChatManager.load_state` continues from."""
        return {
            "chat_id": self.chat_id,
            "messages": [dict(m) for m in self.chat_history],
            "last_speaker": self.last_speaker,
            "stop_reason": {
                "condition": self.stop_reason.condition,
                "detail": self.stop_reason.detail,
            },
        }


class _GroupRun:
    """The bookkeeping of one chat run inside the manager's actor."""

    __slots__ = ("chat", "ids", "journal", "opened", "silent", "spent", "synced")

    def __init__(
        self, chat: GroupChatState, *, silent: bool, journal: GroupJournal | None = None
    ) -> None:
        self.chat = chat
        self.journal = journal
        self.silent = silent
        self.synced: dict[str, int] = {}  # per participant: messages delivered to it so far
        self.ids: dict[str, AgentId] = {}
        self.opened: list[AgentId] = []
        self.spent: dict[str, tuple[int, float]] | None = None  # made when usage is counted


class GroupChatManager(ConversableAgent):
    """Runs group chats: picks each speaker with the group's policy, asks it for a turn, and
    sends its reply to every other participant, until a termination condition holds.

    `termination` adds conditions to AutoGen's two (`max_round` and the manager's
    `is_termination_msg`), e.g. `TokenBudget(50_000) | LoopDetection(3)`.

    Chats run by `run`/`a_run` are journaled turn by turn (see docs/durability.md): by default
    to `$MOOT_JOURNAL_URL` or the SQLite file under the user's data folder; `store=` takes a
    `ChatStore` or a URL, and `store=None` turns the journal off. `a_run(chat_id=...)` of a
    journaled chat resumes it.
    """

    DEFAULT_SYSTEM_MESSAGE = "Group chat manager."

    def __init__(
        self,
        groupchat: GroupChat,
        name: str = "chat_manager",
        max_consecutive_auto_reply: int | None = sys.maxsize,
        human_input_mode: Literal["ALWAYS", "NEVER", "TERMINATE"] = "NEVER",
        system_message: str | None = "Group chat manager.",
        silent: bool = False,
        *,
        llm_config: Mapping[str, Any] | LLMConfig | Literal[False] | None = None,
        is_termination_msg: Callable[[Mapping[str, Any]], bool] | None = None,
        description: str | None = None,
        termination: Termination | None = None,
        input_provider: InputProvider | None = None,
        model_client: ModelClient | None = None,
        finished_chats_kept: int = 256,
        store: StoreOption = DEFAULT,
        lease_ttl: float = 30.0,
    ) -> None:
        if isinstance(llm_config, Mapping) and (
            llm_config.get("functions") or llm_config.get("tools")
        ):
            raise GroupChatError(
                "a GroupChatManager makes no tool or function calls: remove 'functions' and"
                " 'tools' from its llm_config"
            )
        super().__init__(
            name,
            system_message=system_message,
            is_termination_msg=is_termination_msg,
            max_consecutive_auto_reply=max_consecutive_auto_reply,
            human_input_mode=human_input_mode,
            llm_config=llm_config,
            description=description,
            input_provider=input_provider,
            model_client=model_client,
        )
        if groupchat.agent_by_name(name) is not None:
            raise AgentNameConflictError(
                f"the manager's name {name!r} is also a participant's name", names=[name]
            )
        self.groupchat = groupchat
        self.silent = silent
        self.store: StoreOption = store
        self.lease_ttl = lease_ttl
        self._lease_owner = lease_owner()  # this manager's chats: one holder, back after outages
        self._termination_predicate = is_termination_msg or default_is_termination_msg
        base: Termination = MaxMessages(groupchat.max_round) | MessagePredicate(
            self._termination_predicate
        )
        self.termination: Termination = base if termination is None else base | termination
        self._needs_usage = _needs_usage(self.termination)
        self._live: dict[str, GroupChatState] = {}
        self._finished: OrderedDict[str, GroupChatResult] = OrderedDict()
        self._finished_kept = finished_chats_kept
        self._resume_from: dict[str, tuple[Message, ...]] = {}
        self._pending_resume: tuple[Message, ...] = ()
        self.last_result: GroupChatResult | None = None
        self._ask_turn = Turn(sender=name, message=None, request_reply=True)
        self._attached: weakref.WeakSet[Runtime] = weakref.WeakSet()
        self._roster_cache: (
            tuple[tuple[int, ...], tuple[str, ...], dict[str, str], dict[str, Any]] | None
        ) = None

    # -- the actor ---------------------------------------------------------------------------

    def _participant_factory(self, context: AgentContext) -> ManagerParticipant:
        return ManagerParticipant(context, self)

    def agent_by_name(self, name: str) -> ConversableAgent | None:
        """The participant who speaks as `name` (whose code an executor in the group may run)."""
        return self.groupchat.agent_by_name(name)

    # -- public API --------------------------------------------------------------------------

    async def a_run(  # type: ignore[override]  # the group's own run: message first
        self,
        message: str | Mapping[str, Any] | None = None,
        *,
        sender: str = "user",
        chat_id: str | None = None,
        runtime: Runtime | None = None,
        silent: bool = True,
        store: StoreOption | EllipsisType = ...,
    ) -> GroupChatResult:
        """Run one group chat from `message` (sent by `sender`, who need not be a participant).

        With `chat_id` of a journaled chat that has not finished, the chat resumes from its
        journal (`message` is then not used); with the id of a saved (`load_state`) chat, it
        continues that history. `store` overrides the manager's journal for this chat.

        Raises:
            GroupChatError: nothing to start from, or the chat is running already.
            ChatAlreadyFinishedError: the journaled chat has finished.
            LeaseHeldError: another process is running this chat.
            StoreUnavailableError: the journal cannot be reached (before any model call).
            JournalError: the journal refused or lost a turn; the chat stops, resumable.
            ModelError: a model call failed for good.
        """
        option = self.store if store is ... else store
        if runtime is not None:  # no scope to open: a frame less per chat in flight
            if option is None or option is False:  # no journal: a frame less again
                return await self._ask_run(runtime, message, sender, chat_id, silent, None)
            return await self._journaled_run(runtime, message, sender, chat_id, silent, option)
        async with runtime_scope(None) as rt:
            return await self._journaled_run(rt, message, sender, chat_id, silent, option)

    def run(  # type: ignore[override]  # the group's own run: message first
        self,
        message: str | Mapping[str, Any] | None = None,
        *,
        sender: str = "user",
        chat_id: str | None = None,
        silent: bool = True,
        store: StoreOption | EllipsisType = ...,
    ) -> GroupChatResult:
        """Blocking `a_run`, for plain scripts."""
        return run_sync(
            lambda: self.a_run(message, sender=sender, chat_id=chat_id, silent=silent, store=store),
            "run",
            "a_run",
        )

    async def run_stream(
        self,
        message: str | Mapping[str, Any] | None = None,
        *,
        sender: str = "user",
        chat_id: str | None = None,
        runtime: Runtime | None = None,
        buffer: int = 64,
        store: StoreOption | EllipsisType = ...,
    ) -> AsyncGenerator[ChatEvent, None]:
        """Run one group chat and yield its events as they happen; the last is a
        `TerminationEvent` carrying the result. Leaving the loop early cancels the chat (which
        stays resumable). Journaled and resumed by `chat_id` as `a_run` is.

        Raises:
            ChatAlreadyFinishedError, LeaseHeldError, StoreUnavailableError, JournalError:
                as `a_run`.
        """
        option = self.store if store is ... else store
        sink, receive = event_channel(buffer)
        async with runtime_scope(runtime) as rt:
            task = asyncio.get_running_loop().create_task(
                self._stream_run(rt, message, sender, chat_id, sink, option)
            )
            try:
                async with receive:
                    async for event in receive:
                        yield event
                await task
            finally:
                if not task.done():
                    task.cancel()
                await asyncio.gather(task, return_exceptions=True)

    async def _stream_run(
        self,
        rt: Runtime,
        message: str | Mapping[str, Any] | None,
        sender: str,
        chat_id: str | None,
        sink: EventSink,
        option: StoreOption,
    ) -> GroupChatResult:
        try:
            return await self._journaled_run(rt, message, sender, chat_id, True, option, sink)
        finally:
            await sink.aclose()

    async def _journaled_run(
        self,
        rt: Runtime,
        message: str | Mapping[str, Any] | None,
        sender: str,
        chat_id: str | None,
        silent: bool,
        option: StoreOption,
        sink: EventSink | None = None,
    ) -> GroupChatResult:
        """`_ask_run` inside the chat's journal (opened before any model is called)."""
        await self._attach_all(rt)
        if is_distributed(rt, self):  # on workers: the manager's worker journals (see _actor)
            return await self._ask_run(rt, message, sender, chat_id, silent, sink)
        if chat_id is not None and chat_id in self._resume_from:
            option = None  # a continuation driven by hand (`load_state`): nothing to journal
        chat_id = chat_id or new_chat_id()
        opening = None
        if message is not None:
            raw = {"content": message} if isinstance(message, str) else dict(message)
            opening = _group_message(raw, sender)

        async def run(journal: GroupJournal | None) -> GroupChatResult:
            start = None if journal is not None and journal.resumed else message
            return await self._ask_run(rt, start, sender, chat_id, silent, sink, journal)

        return await self._in_journal(option, chat_id, chat_id, opening, run)

    def _journal(
        self, option: StoreOption, chat_id: str, opening: Message | None, *, key: str | None = None
    ) -> AbstractAsyncContextManager[GroupJournal]:
        """This chat's `group_journal`, described by this manager (participants, policy,
        limits, lease), for `a_run` here and for a manager hosted on a worker. `option` turns
        journaling on: both callers run an unjournaled chat without opening one."""
        journal: AbstractAsyncContextManager[GroupJournal] = group_journal(
            option,
            chat_id=chat_id,
            manager=self.name,
            participants=tuple(agent.name for agent in self.groupchat.agents),
            policy=type(self.groupchat.policy).__name__,
            max_round=self.groupchat.max_round,
            opening=opening,
            ttl=self.lease_ttl,
            owner=self._lease_owner,
            key=key,
        )
        return journal

    async def _in_journal(
        self,
        option: StoreOption,
        chat_id: str,
        key: str,
        opening: Message | None,
        run: Callable[[GroupJournal | None], Awaitable[GroupChatResult]],
    ) -> GroupChatResult:
        """`run` the chat inside its journal `chat_id` (opened before any model is called, None
        when journaling is off), then finish the journal or leave it resumable. `key` is the
        chat's id on the runtime, where its humans' questions come from."""
        if option is None or option is False:
            return await run(None)
        journal_human_input(self.groupchat.agents)
        async with self._journal(option, chat_id, opening, key=key) as journal:
            reason: StopReason | None = None
            try:
                result = await run(journal)
                reason = result.stop_reason
            finally:
                await journal.close(reason)
            return result

    async def _ask_run(
        self,
        rt: Runtime,
        message: str | Mapping[str, Any] | None,
        sender: str,
        chat_id: str | None,
        silent: bool,
        sink: EventSink | None,
        journal: GroupJournal | None = None,
    ) -> GroupChatResult:
        chat_id = chat_id or new_chat_id()
        await self._attach_all(rt)
        history = self._resume_from.pop(chat_id, ())
        if journal is not None and journal.resumed:
            history = journal.history
        opening: Message | None
        if message is None:
            if not history:
                raise GroupChatError("a group chat needs a first message or a history to resume")
            opening = None
        else:
            opening = {"content": message} if isinstance(message, str) else dict(message)
        request = RunGroupChat(
            message=opening,
            sender=sender,
            history=history,
            silent=silent,
            sink=sink,
            journal=journal,
        )
        if is_distributed(rt, self):  # the manager runs on a worker: events come with the reply
            return await self._ask_worker(rt, request, chat_id)
        try:  # `ask` inlined: one coroutine less per chat in flight
            result: GroupChatResult = await rt.send(request, self.participant_id(rt, chat_id))
        except HandlerError as exc:  # the chat's own error (a ModelError, ...), unwrapped
            raise (exc.__cause__ or exc) from None
        return result

    async def _ask_worker(
        self, rt: Runtime, request: RunGroupChat, chat_id: str
    ) -> GroupChatResult:
        """Run the chat on the worker that owns it; its events reach the local sink live (a
        transport with feeds) or from the reply."""
        from ._distributed import FeedCursor, GroupChatRun, GroupChatWaiting, LiveFeeds

        sink = request.sink
        wire = replace(request, sink=None, on_worker=True)
        agent_id = self.participant_id(rt, chat_id)
        cursor = None if sink is None else FeedCursor(rt, sink)
        transport = rt.transport
        if cursor is not None and isinstance(transport, LiveFeeds):
            async with await transport.open_feed(cursor.on_payload) as feed:
                reply = await self._send_run(rt, replace(wire, event_feed=feed.subject), agent_id)
        else:
            reply = await self._send_run(
                rt, replace(wire, collect_events=sink is not None), agent_id
            )
        if isinstance(reply, GroupChatWaiting):
            raise reply.error()
        if isinstance(reply, GroupChatRun):
            if cursor is not None:
                await cursor.rest(reply)
            reply = reply.result
        self._finish(reply)
        return cast("GroupChatResult", reply)

    async def _send_run(self, rt: Runtime, wire: RunGroupChat, agent_id: AgentId) -> Any:
        try:
            try:
                return await rt.send(wire, agent_id)
            except (DeliveryError, DeadlineExceededError) as exc:
                # The worker running the chat is gone (or silent): ask once more. The chat's key
                # now lives on a survivor, which resumes it from the journal its manager keeps
                # (waiting out the lost worker's lease on the chat, see `run_on_worker`).
                log.warning("groupchat.worker_lost", chat=agent_id.key, error=repr(exc))
                return await rt.send(wire, agent_id)
        except HandlerError as exc:
            raise (exc.__cause__ or exc) from None

    def _register_messages(self, runtime: Runtime) -> None:
        from ._distributed import register_groupchat_messages

        register_groupchat_messages(runtime)
        if self.store is not None and self.store is not False:
            # A member on a worker may ask a human in a chat this manager runs elsewhere.
            journal_human_input(self.groupchat.agents, self.store)

    async def _attach_all(self, rt: Runtime) -> None:
        """Register the manager's and the participants' actor types on `rt` (once per runtime)."""
        if rt in self._attached:
            return
        selector = self.groupchat.selector_agent
        for agent in (self, *self.groupchat.agents, *([selector] if selector else [])):
            await agent.attach(rt)
        self._attached.add(rt)

    @property
    def last_speaker(self) -> ConversableAgent | None:
        """The participant who spoke last in the latest finished chat (None before any)."""
        result = self.last_result
        if result is None or result.last_speaker is None:
            return None
        return self.groupchat.agent_by_name(result.last_speaker)

    def chat_messages_for_summary(self, agent: ConversableAgent | None = None) -> list[Message]:
        """The group's messages, which a summary of a chat with the manager reads."""
        del agent  # every participant's chat with the manager is the same conversation
        return self.groupchat.messages

    def stop_reason(self, chat_id: str) -> StopReason | None:
        """Why a recently finished chat ended (None if unknown or still running)."""
        result = self._finished.get(chat_id)
        return None if result is None else result.stop_reason

    def result(self, chat_id: str) -> GroupChatResult | None:
        """A recently finished chat's result (the manager keeps the last few hundred)."""
        return self._finished.get(chat_id)

    def save_state(self, chat_id: str) -> dict[str, Any]:
        """A JSON-ready snapshot of a running or recently finished chat.

        Raises:
            GroupChatError: the manager knows no such chat.
        """
        live = self._live.get(chat_id)
        if live is not None:
            return {
                "chat_id": chat_id,
                "messages": [dict(m) for m in live.messages],
                "last_speaker": live.last_speaker,
                "stop_reason": None,
            }
        finished = self._finished.get(chat_id)
        if finished is None:
            raise GroupChatError(f"{self.name} knows no chat {chat_id!r}")
        return finished.to_state()

    def load_state(self, state: Mapping[str, Any]) -> str:
        """Prepare a saved chat to continue: the next run with its chat id resumes it.

        Returns the chat id.
        """
        chat_id = str(state["chat_id"])
        self._resume_from[chat_id] = tuple(dict(m) for m in state["messages"])
        return chat_id

    # -- AutoGen's resume surface -------------------------------------------------------------

    def reset(self) -> None:
        """Forget conversations and counters, and the group's `messages` (AutoGen's reset)."""
        super().reset()
        self.groupchat.reset()
        self._pending_resume = ()

    def messages_to_string(self, messages: Sequence[Mapping[str, Any]]) -> str:
        """`messages` as the JSON text that `resume` and `messages_from_string` read back."""
        return json.dumps([dict(message) for message in messages])

    def messages_from_string(self, message_string: str) -> list[Message]:
        """The messages saved by `messages_to_string`.

        Raises:
            GroupChatError: the text is not a JSON list of messages.
        """
        try:
            loaded = json.loads(message_string)
        except json.JSONDecodeError as exc:
            raise GroupChatError(f"the saved messages are not valid JSON: {exc}") from None
        if not isinstance(loaded, list) or not all(isinstance(m, dict) for m in loaded):
            raise GroupChatError("the saved messages must be a JSON list of message objects")
        return loaded

    def resume(
        self,
        messages: Sequence[Mapping[str, Any]] | str,
        remove_termination_string: str | Callable[[str], str] | None = None,
        silent: bool | None = False,
    ) -> tuple[ConversableAgent, Message]:
        """Prepare the group to continue from `messages` (a list or its JSON text): every
        participant's `chat_messages[manager]` and the group's `messages` get all but the last
        message. Returns the last speaker (the manager itself when it, or `admin_name`, spoke
        last; a message without a name counts as the manager's) and the last message, to go on
        with `last_agent.initiate_chat(manager, message=last_message, clear_history=False)`.

        Raises:
            GroupChatError: the messages are empty, not messages, or name someone outside the
                group.
        """
        history = self._resume_history(messages)
        for agent in self.groupchat.agents:
            agent.clear_history()
        self.clear_history()
        self.groupchat.reset()
        earlier, last = history[:-1], history[-1]
        for agent in self.groupchat.agents:
            _seed(agent, self, _view(earlier, agent.name))
            _seed(self, agent, _view(earlier, self.name))
        self.groupchat.messages.extend(earlier)
        self._pending_resume = tuple(earlier)
        speaker = str(last.get("name"))
        found = self.groupchat.agent_by_name(speaker)
        previous: ConversableAgent = self if found is None else found
        content = last.get("content")
        if remove_termination_string is not None and isinstance(content, str):
            if callable(remove_termination_string):
                last["content"] = remove_termination_string(content)
            else:
                last["content"] = content.replace(remove_termination_string, "")
        if self._termination_predicate(last):
            log.warning("groupchat.resume_terminates", manager=self.name)
        if not silent:
            IOStream.get_default().print(
                f"Prepared group chat with {len(history)} messages, the last speaker is {speaker}"
            )
        self.groupchat.send_introductions = False
        return previous, last

    def _resume_history(self, messages: Sequence[Mapping[str, Any]] | str) -> list[Message]:
        loaded = self.messages_from_string(messages) if isinstance(messages, str) else messages
        if not isinstance(loaded, list | tuple) or not all(isinstance(m, Mapping) for m in loaded):
            raise GroupChatError("resume needs a list of message dicts or their JSON text")
        history = [copy.deepcopy(dict(m)) for m in loaded]
        if not history:
            raise GroupChatError(
                "cannot resume from an empty list of messages; start the chat with"
                " initiate_chat instead"
            )
        allowed = {self.name, self.groupchat.admin_name}
        for entry in history:
            name = entry.get("name")
            if name is None:
                entry["name"] = self.name
            elif name not in allowed and self.groupchat.agent_by_name(name) is None:
                raise GroupChatError(f"the messages name {name!r}, who is not in the group")
        return history

    async def a_resume(
        self,
        messages: Sequence[Mapping[str, Any]] | str,
        remove_termination_string: str | Callable[[str], str] | None = None,
        silent: bool | None = False,
    ) -> tuple[ConversableAgent, Message]:
        """`resume`, for async code (it does no I/O)."""
        return self.resume(messages, remove_termination_string, silent)

    async def a_initiate_chat(
        self,
        recipient: ConversableAgent,
        message: str | Mapping[str, Any] | Callable[..., Any] | None = None,
        *,
        runtime: Runtime | None = None,
        **options: Any,
    ) -> ChatResult:
        """As `ConversableAgent.a_initiate_chat`; with the manager itself as `recipient` (after
        a `resume` whose last speaker was the manager) the group goes on from `message`."""
        if recipient is not self:
            return await super().a_initiate_chat(recipient, message, runtime=runtime, **options)
        if message is None or callable(message):
            raise GroupChatError("the manager continues a resumed chat from a message it is given")
        chat_id = new_chat_id()
        if self._pending_resume:
            self._resume_from[chat_id] = self._pending_resume
            self._pending_resume = ()
        silent = bool(options.get("silent", False))
        async with runtime_scope(runtime) as rt:
            result = await self._ask_run(rt, message, self.name, chat_id, silent, None)
        return ChatResult(
            chat_id=chat_id,
            chat_history=result.chat_history,
            summary=result.summary,
            cost=UsageSummary(),
            human_input=[],
        )

    # -- running a chat (inside this manager's actor for the chat) ---------------------------

    async def _run_from_turn(self, context: AgentContext, state: ChatState, turn: Turn) -> None:
        """An agent initiated a chat with the manager: run the group from its message."""
        assert turn.message is not None
        await self._handle_turn(
            state, Turn(sender=turn.sender, message=turn.message, request_reply=False)
        )
        history, self._pending_resume = self._pending_resume, ()
        request = RunGroupChat(
            message=turn.message, sender=turn.sender, history=history, silent=state.silent
        )
        if history or is_distributed(context.runtime, self):  # a continuation, or on workers
            await self._run_group(context, request, initiator=turn.sender)
            return
        key = context.id.key
        opening = _group_message(dict(turn.message), turn.sender)

        async def run(journal: GroupJournal | None) -> GroupChatResult:
            if journal is not None and journal.resumed:
                resumed = replace(request, message=None, history=journal.history, journal=journal)
                return await self._run_group(context, resumed, initiator=turn.sender)
            return await self._run_group(
                context, replace(request, journal=journal), initiator=turn.sender
            )

        await self._in_journal(self.store, group_chat_id(key), key, opening, run)

    async def _run_group(
        self, context: AgentContext, request: RunGroupChat, *, initiator: str | None
    ) -> GroupChatResult:
        """The group chat, as one `invoke_workflow` span (moot.observability)."""
        with observability.workflow("group_chat", context.id.key, self.name) as span:
            span.set(
                observability.semconv.MOOT_SELECTION_POLICY, type(self.groupchat.policy).__name__
            )
            result = await self._run_group_turns(context, request, initiator=initiator)
            span.set(observability.semconv.MOOT_STOP_REASON, result.stop_reason.condition)
            return result

    async def _run_group_turns(
        self, context: AgentContext, request: RunGroupChat, *, initiator: str | None
    ) -> GroupChatResult:
        rt = context.runtime
        chat_id = context.id.key
        if chat_id in self._live:
            raise GroupChatError(f"chat {chat_id!r} is already running")
        if not self.groupchat.agents:
            raise GroupChatError("a group chat needs at least one agent to start")
        await self._attach_all(rt)
        groupchat = self.groupchat
        names, descriptions, by_name = self._roster()
        messages: list[Message] = [dict(m) for m in request.history]
        chat = GroupChatState(
            chat_id,
            names,
            messages=messages,
            descriptions=descriptions,
            clock=rt.clock.now,
            agents=by_name,
            view=groupchat.for_chat,
            asker=self._ask_human,
        )
        chat.sink = request.sink
        if messages:
            chat.last_speaker = messages[-1].get("name")
        journal: GroupJournal | None = request.journal
        resumed = journal is not None and journal.resumed
        if journal is not None and resumed:  # the journal's turns count in this run
            chat.start_index, chat.turns = 0, journal.turns
        run = _GroupRun(chat, silent=request.silent or self.silent, journal=journal)
        intro: Message | None = None
        if groupchat.send_introductions:  # on resume too: it heads every participant's thread
            intro = {"content": groupchat.introductions_msg(), "name": self.name}
        self._live[chat_id] = chat
        client: ModelClient | None = None
        lease = groupchat.selection_lease(self)  # the selector's model (held by its agent)
        try:
            if lease is not None:
                client = await lease.acquire()
                chat.model_client = client
            if is_distributed(rt, self):  # members run on workers: open them by message
                from ._distributed import open_members

                await open_members(self, rt, run, initiator)
            else:
                self._open_participants(rt, run, initiator, request.silent, resumed, intro)
            if journal is not None and resumed:  # work files back before the redone turn
                await journal.restore_workspaces(chat)
            if intro is not None and not resumed:
                turn = Turn(sender=self.name, message=intro, request_reply=False)
                for agent_id in run.ids.values():
                    await rt.tell(turn, agent_id, sender=context.id)
            if request.message is not None:
                opening = _group_message(request.message, request.sender)
                chat.messages.append(opening)
                chat.last_speaker = request.sender
                if not run.silent and initiator is None:  # else printed on arrival already
                    print_message(request.sender, self.name, opening)
                if chat.sink is not None:
                    await _emit_message(chat, request.sender, opening)
            reason = self.termination.check(chat)
            while reason is None:
                reason = await self._turn(rt, run, context.id)
            for name, agent_id in run.ids.items():  # everyone ends with the whole conversation
                final = self._catch_up(run, name, request_reply=False)
                if final is not None:
                    await rt.tell(final, agent_id, sender=context.id)
            result = GroupChatResult(
                chat_id=chat_id,
                chat_history=messages,
                stop_reason=reason,
                turns=chat.turns,
                last_speaker=chat.last_speaker,
                usage=chat.usage,
                cost=chat.cost,
            )
            if chat.sink is not None:
                await chat.sink.emit(
                    TerminationEvent(chat_id=chat_id, turn=chat.turns, reason=reason, result=result)
                )
            self._finish(result)
            return result
        finally:
            del self._live[chat_id]
            if client is not None and lease is not None:
                await lease.release()
            for agent_id in run.opened:  # queued behind their pending turns; settled by the runtime
                await rt.tell(CloseChat(), agent_id, sender=context.id)

    def _finish(self, result: GroupChatResult) -> None:
        self.last_result = result
        self.groupchat.messages[:] = result.chat_history
        finished = self._finished
        finished[result.chat_id] = result
        while len(finished) > self._finished_kept:
            finished.popitem(last=False)

    async def _ask_human(self, prompt: str, chat_id: str) -> str:
        request = InputRequest(prompt=prompt, agent=self.name, chat_id=chat_id)
        return await self.input_provider.get_input(request)

    def _roster(self) -> tuple[tuple[str, ...], dict[str, str], dict[str, Any]]:
        """Names, descriptions and agents by name; rebuilt only when the group changes."""
        agents = self.groupchat.agents
        key = tuple(map(id, agents))
        cached = self._roster_cache
        if cached is None or cached[0] != key:
            cached = (
                key,
                tuple(agent.name for agent in agents),
                {agent.name: agent.description for agent in agents},
                {agent.name: agent for agent in agents},
            )
            self._roster_cache = cached
        return cached[1], cached[2], cached[3]

    def _open_participants(
        self,
        rt: Runtime,
        run: _GroupRun,
        initiator: str | None,
        silent: bool,
        resumed: bool = False,
        intro: Message | None = None,
    ) -> None:
        """Open each participant's side with the chat's messages so far; resumed from the
        journal, each thread starts with the introductions it was sent when the chat started."""
        before = [intro] if resumed and intro is not None else []
        chat = run.chat
        for agent in self.groupchat.agents:
            agent_id = agent.participant_id(rt, chat.chat_id)
            run.ids[agent.name] = agent_id
            run.synced[agent.name] = len(chat.messages)
            if agent.name == initiator:
                # Its side is open already (its chat with the manager). It waits for the manager
                # now, so it can be quieted: the manager prints each message once. On resume its
                # thread holds the opening message only: it gets the rest here.
                state = agent.chat_state(chat.chat_id)
                state.silent = True
                if resumed and len(chat.messages) > len(state.messages):
                    rest = chat.messages[len(state.messages) :]
                    state.messages.extend(_view([*before, *rest], agent.name))
                continue
            state = agent.open_chat(chat.chat_id, self, silent=True)  # the manager prints
            run.opened.append(agent_id)
            if chat.messages:
                state.messages.extend(_view([*before, *chat.messages], agent.name))

    def _catch_up(self, run: _GroupRun, name: str, *, request_reply: bool) -> Turn | None:
        """The `Turn` that delivers to `name` the messages it has not received yet (it has its
        own already), asking for a reply or not; None when it has missed nothing.

        The broadcast is lazy: a participant receives what the others said just before it
        speaks, in the same `Turn` that asks it to speak, and at the end. Each participant
        still gets every message, in order, but a turn is one runtime message to one
        participant actor instead of a message to each of them.
        """
        messages = run.chat.messages
        synced = run.synced
        end = len(messages)
        index = synced.get(name, 0)
        synced[name] = end
        missed = [message for message in messages[index:end] if message.get("name") != name]
        if not missed:
            return None
        last = missed.pop()
        return Turn(
            sender=str(last.get("name")),
            message=last,
            request_reply=request_reply,
            backlog=tuple(missed),
        )

    def _add(self, run: _GroupRun, speaker: str, message: Message) -> None:
        chat = run.chat
        chat.messages.append(message)
        chat.last_speaker = speaker
        if not run.silent:
            print_message(speaker, self.name, message)

    async def _turn(self, rt: Runtime, run: _GroupRun, me: AgentId) -> StopReason | None:
        chat = run.chat
        policy = self.groupchat.policy
        if observability.SWITCH.active:  # else the hot path: one flag when nothing records
            with observability.speaker_selection(
                type(policy).__name__, chat.participants, chat.chat_id
            ) as selecting:
                choice = await policy.select(chat, chat.participants)
                selecting.chosen(None if isinstance(choice, NoSpeaker) else choice)
        else:
            choice = await policy.select(chat, chat.participants)
        if isinstance(choice, NoSpeaker):
            return StopReason(condition="NoEligibleSpeaker", detail=choice.reason)
        if chat.sink is not None:
            await chat.sink.emit(selected_event(chat, choice, policy))
        turn = self._catch_up(run, choice, request_reply=True) or self._ask_turn
        try:  # `ask` inlined: one coroutine less per turn on the hot path
            reply: TurnReply = await rt.send(turn, run.ids[choice], sender=me)
        except HandlerError as exc:  # the speaker's own error (a ModelError, ...), unwrapped
            raise (exc.__cause__ or exc) from None
        except (DeliveryError, DeadlineExceededError) as exc:
            if run.journal is None or not is_distributed(rt, self):
                raise
            from ._distributed import retry_member_turn  # its worker died: once more elsewhere

            reply = await retry_member_turn(self, rt, run, choice, me, exc)
        chat.turns += 1
        if reply.message is None:
            return StopReason(condition="NoReply", detail=f"{choice} gave no reply")
        if self._needs_usage or chat.sink is not None:
            await self._count_usage(run, choice, rt)
        message = _group_message(reply.message, choice)
        self._add(run, choice, message)
        run.synced[choice] = len(chat.messages)  # it has its own reply already
        if chat.sink is not None:
            await _emit_message(chat, choice, message)
        if message.get("tool_calls"):
            ack = _handoff_ack(message, self.name)
            if ack is not None:  # answer the transfer call, so nobody tries to run it
                chat.messages.append(ack)
                if not run.silent:
                    print_message(self.name, choice, ack)
                if chat.sink is not None:
                    await _emit_message(chat, self.name, ack)
        reason = self.termination.check(chat)
        if run.journal is not None:  # durable before the next speaker is asked
            await run.journal.record(chat, choice, message, type(policy).__name__, reason)
        return reason

    async def _count_usage(self, run: _GroupRun, speaker: str, rt: Runtime | None = None) -> None:
        agent = self.groupchat.agent_by_name(speaker)
        if agent is None:
            return
        try:
            if rt is not None and is_distributed(rt, agent):
                from ._distributed import member_usage

                summary = await member_usage(rt, run.ids[speaker])
            else:
                summary = agent.chat_state(run.chat.chat_id).usage.summary()
        except AgentError:
            return
        tokens, cost = summary.total_tokens, summary.total_cost
        spent = run.spent
        if spent is None:
            spent = run.spent = {}
        before = spent.get(speaker, (0, 0.0))
        spent[speaker] = (tokens, cost)
        if tokens != before[0] or cost != before[1]:
            delta = ModelResponse(
                content=None,
                usage=Usage(total_tokens=tokens - before[0]),
                cost=cost - before[1],
            )
            await run.chat.record_usage(speaker, delta)


def _seed(agent: ConversableAgent, peer: ConversableAgent, messages: list[Message]) -> None:
    """Make `messages` the agent's latest conversation with `peer` (its `chat_messages`)."""
    agent._conversations[peer] = messages


def _needs_usage(termination: Termination) -> bool:
    from ._terminations import AllOf, AnyOf, CostBudget, TokenBudget

    if isinstance(termination, AnyOf | AllOf):
        return any(_needs_usage(each) for each in termination.conditions)
    return isinstance(termination, TokenBudget | CostBudget)


def _group_message(message: Mapping[str, Any], speaker: str) -> Message:
    """A reply as the group's history keeps it: named for its speaker (a function result keeps
    its function's name, as in AutoGen), in the manager's roles."""
    entry = dict(message)
    role = entry.get("role")
    if role not in ("tool", "function"):
        entry["role"] = "assistant" if entry.get("tool_calls") else "user"
    if role != "function" or not entry.get("name"):
        entry["name"] = speaker
    return entry


def _handoff_ack(message: Message, manager: str) -> Message | None:
    """The manager's tool answer to a message whose tool calls all hand the turn over, or None.

    It carries the target as "handoff", so `Handoffs` and `HandoffTermination` see it, and it
    reaches every participant, the caller included (each tool call needs its answer).
    """
    calls = message.get("tool_calls") or []
    names = [str((call.get("function") or {}).get("name", "")) for call in calls]
    if not names or not all(name.startswith(HANDOFF_PREFIX) for name in names):
        return None
    target = names[-1][len(HANDOFF_PREFIX) :]
    text = f"Transferred to {target}."
    responses = [
        {"tool_call_id": call.get("id"), "role": "tool", "content": text} for call in calls
    ]
    return {
        "role": "tool",
        "name": manager,
        "content": text,
        "tool_responses": responses,
        "handoff": target,
    }


def _view(messages: Sequence[Message], name: str) -> list[Message]:
    """The history as participant `name` keeps it: its own messages as the assistant's."""
    out = []
    for message in messages:
        if message.get("role") in ("tool", "function"):
            out.append(dict(message))
        else:
            out.append({**message, "role": "assistant" if message.get("name") == name else "user"})
    return out


async def _emit_message(chat: GroupChatState, speaker: str, message: Message) -> None:
    turn = chat.turns
    await chat.emit(MessageEvent(chat_id=chat.chat_id, turn=turn, speaker=speaker, message=message))
    calls = message.get("tool_calls")
    if calls:
        await chat.emit(
            ToolCallEvent(chat_id=chat.chat_id, turn=turn, speaker=speaker, calls=tuple(calls))
        )
    content = message.get("content")
    if isinstance(content, str):
        found = _EXITCODE.match(content)
        if found:
            await chat.emit(
                CodeRunEvent(
                    chat_id=chat.chat_id,
                    turn=turn,
                    speaker=speaker,
                    exit_code=int(found.group(1)),
                    output=content,
                )
            )
