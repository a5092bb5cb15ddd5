"""`ConversableAgent`: AutoGen's classic agent, acting through one participant actor per chat."""

from __future__ import annotations

import functools
import inspect
import re
import sys
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, TypeVar, cast

from moot.models import LLMConfig, UsageSummary, UsageTracker, client_from_llm_config
from moot.runtime import AgentContext, AgentId, Runtime

from . import _logging
from ._chat import (
    AsyncRunResponse,
    ChatResult,
    ChatState,
    RunResponse,
    print_message,
    run_sync,
    run_two_agent_chat,
    runtime_scope,
)
from ._code_execution import ChatCode, CodeExecution, code_to_run, may_run
from ._errors import AgentConfigError, AgentError, ToolRegistrationError
from ._human_input import ConsoleInputProvider, InputProvider, InputRequest
from ._participant import ChatParticipant, Message, Say, Summarize, Turn, TurnReply
from ._resources import Hold, Lease, ResourceHolder, borrowed, hold
from ._tools import Tool, run_tool_calls, tool_call_id

if TYPE_CHECKING:
    from contextlib import AbstractAsyncContextManager

    from moot.executors import Executor
    from moot.models import ModelClient

HumanInputMode = Literal["ALWAYS", "NEVER", "TERMINATE"]
ReplyFunction = Callable[..., "tuple[bool, Any] | Awaitable[tuple[bool, Any]]"]
"""`reply_func(recipient, messages, sender, config) -> (final, reply)`, sync or async."""
Trigger = Any
"""What `register_reply` matches a sender against: a class, an agent, a name, a callable, None,
or a list of these."""

F = TypeVar("F", bound=Callable[..., Any])

DEFAULT_MAX_CONSECUTIVE_AUTO_REPLY = 100
DEFAULT_SUMMARY_PROMPT = (
    "Write the outcome of the conversation above in a few plain sentences, with no preamble."
)
_TERMINATE_RE = re.compile(r"\bTERMINATE\W*$")
_NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_TYPE_UNSAFE = re.compile(r"[^A-Za-z0-9_.\-]")


def default_is_termination_msg(message: Mapping[str, Any]) -> bool:
    """True when the content, trimmed, ends with the word TERMINATE (punctuation may follow)."""
    content = message.get("content")
    return (
        isinstance(content, str)
        and "TERMINATE" in content  # most messages: no copy, no regex
        and _TERMINATE_RE.search(content.strip()) is not None
    )


QuickReply = Callable[["ChatState", list["Message"], "ConversableAgent | None"], Any]
"""A built-in reply function's synchronous part: its `(final, reply)` when it can tell without
awaiting anything, or None when the async function must run."""

_PASS: tuple[bool, Any] = (False, None)
_STOP: tuple[bool, Any] = (True, None)
_NO_REPLY = TurnReply(message=None)
_SPEAKING_ROLES = ("user", "assistant")


@dataclass(slots=True, kw_only=True)
class _ReplyEntry:
    trigger: Trigger
    function: Callable[..., Any]
    config: Any
    reset_config: Callable[[Any], None] | None
    builtin: bool
    quick: QuickReply | None = None


_ChainLink = tuple[_ReplyEntry, bool]
"""A reply function that applies to a sender, and whether its trigger must be asked each time
(a callable trigger); the rest were matched once, when the chain was built for that sender."""


def _to_message(message: str | Mapping[str, Any]) -> Message:
    if isinstance(message, str):
        return {"content": message}
    if isinstance(message, Mapping):
        return dict(message)
    raise AgentError(f"a message must be a str or a dict, not {type(message).__name__}")


def _is_valid(message: Mapping[str, Any]) -> bool:
    return "content" in message or "tool_calls" in message or "tool_responses" in message


@functools.lru_cache(maxsize=1024)
def _name_ok(name: str) -> bool:
    """Whether the API accepts `name` as a message's name (checked once per name)."""
    return _NAME_RE.match(name) is not None


def _model_messages(system_message: str, history: Sequence[Message]) -> list[dict[str, Any]]:
    """The conversation as OpenAI chat messages (tool responses become one message each)."""
    out: list[dict[str, Any]] = [{"role": "system", "content": system_message}]
    for message in history:
        _add_model_message(out, message)
    return out


def _add_model_message(out: list[dict[str, Any]], message: Message) -> None:
    """Append `message` to `out` as OpenAI chat messages.

    A message that is in that form already (content, a user or assistant role, a valid name;
    the common case) is appended as it is, not copied: clients only read what they are given.
    """
    responses = message.get("tool_responses")
    if responses:
        for response in responses:
            out.append(
                {
                    "role": "tool",
                    "tool_call_id": response.get("tool_call_id"),
                    "content": str(response.get("content") or ""),
                }
            )
        return
    role = message.get("role", "user")
    name = message.get("name")
    named = isinstance(name, str) and role in _SPEAKING_ROLES and _name_ok(name)
    if len(message) == 3 and named and "content" in message and "role" in message:
        out.append(message)
        return
    item: dict[str, Any] = {"role": role, "content": message.get("content")}
    if named:
        item["name"] = name
    if message.get("tool_calls"):
        item["tool_calls"] = message["tool_calls"]
    out.append(item)


def _asks_each_time(trigger: Trigger) -> bool:
    """Whether a trigger is, or contains, a callable to call with each sender."""
    if isinstance(trigger, list):
        return any(_asks_each_time(each) for each in trigger)
    return callable(trigger) and not isinstance(trigger, type | ConversableAgent)


def _tool_calls_quick(
    state: ChatState, messages: list[Message], sender: ConversableAgent | None
) -> tuple[bool, Any] | None:
    """Most turns carry no tool calls to run: the tool-call reply passes without awaiting."""
    message = messages[-1] if messages else {}
    if not message.get("tool_calls") or message.get("role") == "assistant":
        return _PASS
    return None


def _without_stream(config: LLMConfig) -> tuple[LLMConfig, bool]:
    """AutoGen's `"stream": True` (top level or in an entry) as our streaming flag, taken out of
    the parameters sent verbatim, so the client asks for a stream and reads it as one."""
    stream = bool(config.params.get("stream")) or any(
        entry.params.get("stream") for entry in config.config_list
    )
    if not stream and "stream" not in config.params:
        return config, False
    entries = tuple(
        entry.model_copy(update={"params": _drop(entry.params, "stream")})
        for entry in config.config_list
    )
    update = {"params": _drop(config.params, "stream"), "config_list": entries}
    return config.model_copy(update=update), stream


def _drop(params: Mapping[str, Any], key: str) -> dict[str, Any]:
    return {name: value for name, value in params.items() if name != key}


def _show_token(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


class ConversableAgent:
    """An agent that talks: it replies to messages with its reply functions, in order:

    termination and human input, then tool calls, then code execution, then the model. One agent
    object may take part in many chats at once; each chat has its own participant actor on the
    runtime and its own history and counters.
    """

    DEFAULT_SYSTEM_MESSAGE = "You are a helpful assistant."

    def __init__(
        self,
        name: str,
        system_message: str | None = DEFAULT_SYSTEM_MESSAGE,
        is_termination_msg: Callable[[Mapping[str, Any]], bool] | None = None,
        max_consecutive_auto_reply: int | None = None,
        human_input_mode: HumanInputMode = "TERMINATE",
        function_map: Mapping[str, Callable[..., Any]] | None = None,
        code_execution_config: Mapping[str, Any] | Executor | Literal[False] | None = False,
        llm_config: Mapping[str, Any] | LLMConfig | Literal[False] | None = None,
        default_auto_reply: str | Mapping[str, Any] = "",
        description: str | None = None,
        *,
        input_provider: InputProvider | None = None,
        model_client: ModelClient | None = None,
    ) -> None:
        if not isinstance(name, str) or not name:
            raise AgentConfigError("an agent needs a non-empty name")
        if human_input_mode not in ("ALWAYS", "NEVER", "TERMINATE"):
            raise AgentConfigError(
                "human_input_mode must be 'ALWAYS', 'NEVER' or 'TERMINATE';"
                f" got {human_input_mode!r}"
            )
        if max_consecutive_auto_reply is not None and max_consecutive_auto_reply < 0:
            raise AgentConfigError("max_consecutive_auto_reply must not be negative")
        self.name = name
        self._system_message = system_message or ""
        self.description = description if description is not None else self._system_message
        self.human_input_mode: HumanInputMode = human_input_mode
        self._is_termination_msg = is_termination_msg or default_is_termination_msg
        self._max_consecutive_auto_reply = (
            DEFAULT_MAX_CONSECUTIVE_AUTO_REPLY
            if max_consecutive_auto_reply is None
            else max_consecutive_auto_reply
        )
        self._max_per_sender: dict[ConversableAgent, int] = {}
        self._default_auto_reply = default_auto_reply
        self.input_provider: InputProvider = input_provider or ConsoleInputProvider()
        self.code_execution_config = code_execution_config
        self._code = CodeExecution.from_config(code_execution_config)
        if _logging.logging_enabled():  # runtime_logging records the agents it sees built
            _logging.log_new_agent(
                self, {"name": name, "system_message": system_message, "llm_config": llm_config}
            )
        self._llm: LLMConfig | None = None
        self._stream = False
        if llm_config is None or llm_config is False:
            self.llm_config: dict[str, Any] | Literal[False] = False
        else:
            self._llm, self._stream = _without_stream(LLMConfig.from_autogen(llm_config))
            self.llm_config = (
                dict(llm_config) if isinstance(llm_config, Mapping) else llm_config.model_dump()
            )
        self._given_client = model_client
        self._model_lease: Lease[ModelClient] | None = None
        if model_client is not None or self._llm is not None:
            self._model_lease = Lease(self._open_client)
        self._executor_lease: Lease[Executor] | None = None
        if self._code is not None:
            self._executor_lease = Lease(self._code.open_executor)
        # The thread of the chat that works in code_execution_config's work_dir: the agent's
        # first chat, continued by chats that keep its history (see `_code_execution`).
        self._work_dir_thread: list[Message] | None = None
        self._llm_tools: dict[str, Tool] = {}
        self._function_map: dict[str, Tool] = {}
        for fname, function in (function_map or {}).items():
            self._function_map[fname] = self._execution_tool(function, fname)
        self._reply_func_list: list[_ReplyEntry] = []
        # Per sender, the reply functions whose triggers match it; rebuilt when the list changes.
        self._chains: dict[ConversableAgent | None, tuple[int, tuple[_ChainLink, ...]]] = {}
        self._chains_version = 0
        self._conversations: dict[ConversableAgent, list[Message]] = {}
        self._chats: dict[str, ChatState] = {}
        self._usage = UsageTracker()
        safe = _TYPE_UNSAFE.sub("_", name)[:48]
        # Unique per agent object: the runtime's registration holds this agent, so its id
        # cannot be reused by another agent while the type is registered.
        self._actor_type = f"moot.agent.{safe}.{id(self):x}"
        # Registered last first: human/termination, tools, code, model is the order they run.
        builtins: tuple[tuple[Callable[..., Any], QuickReply | None], ...] = (
            (self._model_reply, None),
            (self._code_execution_reply, self._code_execution_quick),
            (self._tool_calls_reply, _tool_calls_quick),
            (self._check_termination_and_human_reply, self._termination_quick),
        )
        for builtin, quick in builtins:
            self._reply_func_list.insert(
                0,
                _ReplyEntry(
                    trigger=[ConversableAgent, None],
                    function=builtin,
                    config=None,
                    reset_config=None,
                    builtin=True,
                    quick=quick,
                ),
            )

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"

    # ------------------------------------------------------------------ properties

    @property
    def system_message(self) -> str:
        return self._system_message

    def update_system_message(self, system_message: str) -> None:
        """Replace the system message used for later model calls."""
        self._system_message = system_message

    @property
    def max_consecutive_auto_reply(self) -> int:
        return self._max_consecutive_auto_reply

    def update_max_consecutive_auto_reply(
        self, value: int, sender: ConversableAgent | None = None
    ) -> None:
        """Change the auto-reply limit, for every sender or for one."""
        if sender is None:
            self._max_consecutive_auto_reply = value
            self._max_per_sender.clear()
        else:
            self._max_per_sender[sender] = value

    def _max_for(self, sender: ConversableAgent | None) -> int:
        if sender is None:
            return self._max_consecutive_auto_reply
        return self._max_per_sender.get(sender, self._max_consecutive_auto_reply)

    @property
    def chat_messages(self) -> dict[ConversableAgent, list[Message]]:
        """Per peer, the messages of the latest chat with it (this agent's view)."""
        return dict(self._conversations)

    def last_message(self, agent: ConversableAgent | None = None) -> Message | None:
        """The last message of the latest chat with `agent` (or with the only peer).

        Raises:
            AgentError: `agent` is None and this agent has talked with several peers.
        """
        if agent is None:
            if not self._conversations:
                return None
            if len(self._conversations) > 1:
                raise AgentError(
                    f"{self.name} has talked with several agents; pass the one you mean"
                )
            thread = next(iter(self._conversations.values()))
        else:
            found = self._conversations.get(agent)
            if found is None:
                raise AgentError(f"{self.name} has no conversation with {agent.name}")
            thread = found
        return thread[-1] if thread else None

    def reset(self) -> None:
        """Forget finished conversations, counters and reply-function state (not usage)."""
        self._conversations.clear()
        for entry in self._reply_func_list:
            if entry.reset_config is not None:
                entry.reset_config(entry.config)

    def clear_history(self, recipient: ConversableAgent | None = None) -> None:
        """Forget the latest conversation with `recipient`, or all of them."""
        if recipient is None:
            self._conversations.clear()
        else:
            self._conversations.pop(recipient, None)

    def get_total_usage(self) -> UsageSummary:
        """Model usage of this agent over all its chats, cached answers included."""
        return self._usage.summary()

    def print_usage_summary(self) -> None:
        usage = self.get_total_usage()
        sys.stdout.write(
            f"Agent {self.name!r}: {usage.calls} model call(s), {usage.prompt_tokens} prompt +"
            f" {usage.completion_tokens} completion tokens, ${usage.total_cost:.6f}\n"
        )

    # ------------------------------------------------------------------ model and executor

    def _open_client(self) -> AbstractAsyncContextManager[ModelClient]:
        if self._given_client is not None:
            return borrowed(self._given_client)
        assert self._llm is not None  # the lease exists only with a model
        return client_from_llm_config(self._llm)

    # -- code execution: workspaces and whose code runs (see `_code_execution`) ---------------

    def _chat_code(self, thread: list[Message], continues: list[Message] | None) -> ChatCode | None:
        """A chat's code execution; it works in work_dir if it is the agent's first chat, or
        continues that chat's thread, or the workspace is shared."""
        code, lease = self._code, self._executor_lease
        if code is None or lease is None:
            return None
        first = self._work_dir_thread is None
        if first or (continues is not None and continues is self._work_dir_thread):
            self._work_dir_thread = thread
            return ChatCode(code, lease, shared=True)
        return ChatCode(code, lease, shared=code.shared_workspace)

    @property
    def writes_code(self) -> bool:
        """Whether `execute_from="models"` (the default) runs this agent's code: it has a model."""
        return self._model_lease is not None

    def agent_by_name(self, name: str) -> ConversableAgent | None:
        """The agent that speaks as `name` in a chat with this one: itself, or None."""
        return self if name == self.name else None

    # ------------------------------------------------------------------ actors

    async def attach(self, runtime: Runtime) -> None:
        """Register this agent's actor types on `runtime` (once), and have its resource holder
        keep the model client and executor open until the runtime stops."""
        if self._actor_type in runtime.agent_types():
            return
        runtime.register(self._actor_type, self._participant_factory, idle_timeout=300.0)
        holder = f"{self._actor_type}.resources"
        runtime.register(holder, self._holder_factory)
        await runtime.send(Hold(), AgentId(holder))

    def participant_id(self, runtime: Runtime, chat_id: str) -> AgentId:
        """The address of this agent's participant in chat `chat_id` on `runtime`; call
        `attach(runtime)` first."""
        return AgentId(self._actor_type, chat_id)

    def _holder_factory(self, context: AgentContext) -> ResourceHolder:
        leases: list[Lease[Any]] = []
        if self._model_lease is not None:
            leases.append(self._model_lease)
        if self._executor_lease is not None:
            leases.append(self._executor_lease)
        return ResourceHolder(context, tuple(leases))

    def _participant_factory(self, context: AgentContext) -> ChatParticipant:
        return ChatParticipant(context, self)

    def open_chat(
        self,
        chat_id: str,
        peer: ConversableAgent | None,
        *,
        clear_history: bool = True,
        silent: bool = False,
    ) -> ChatState:
        """Start this agent's side of a chat; its participant actor works on the returned state.

        With `clear_history=False` the chat continues the latest thread with `peer`.
        """
        previous = self._conversations.get(peer) if peer is not None else None
        continues = previous if previous is not None and not clear_history else None
        messages = list(continues) if continues is not None else []
        state = ChatState(
            chat_id=chat_id,
            owner=self,
            peer=peer,
            messages=messages,
            silent=silent,
            model=self._model_lease,
            code=self._chat_code(messages, continues),
        )
        self._chats[chat_id] = state
        if peer is not None:
            self._conversations[peer] = state.messages
        return state

    def chat_state(self, chat_id: str) -> ChatState:
        """This agent's state in an open chat.

        Raises:
            AgentError: no such open chat.
        """
        try:
            return self._chats[chat_id]
        except KeyError:
            raise AgentError(f"{self.name} has no open chat {chat_id!r}") from None

    # ------------------------------------------------------------------ participant handlers

    def _record(
        self,
        state: ChatState,
        message: Mapping[str, Any],
        *,
        sent: bool,
        sender: str,
        fresh: bool = False,
    ) -> Message:
        """Append `message` to the chat in this agent's roles; a copy unless `fresh` (made for
        this call, so it may be changed in place)."""
        if not _is_valid(message):
            raise AgentError(
                "a message needs 'content', 'tool_calls' or 'tool_responses';"
                f" got keys {sorted(message)}"
            )
        role = message.get("role")
        recorded: Message
        if role == "tool" or role == "function":
            recorded = cast("Message", message) if fresh else dict(message)
        elif fresh:
            recorded = cast("Message", message)
            recorded["role"] = "assistant" if sent else "user"
        else:
            recorded = {**message, "role": "assistant" if sent else "user"}
        if "name" not in recorded:
            recorded["name"] = sender
        state.messages.append(recorded)
        return recorded

    async def _handle_say(self, state: ChatState, say: Say) -> Message:
        message = await self._initial_message(state, say.message, dict(say.context))
        return self._record(state, message, sent=True, sender=self.name, fresh=True)

    async def _initial_message(
        self, state: ChatState, message: Any, context: dict[str, Any]
    ) -> Message:
        carryover = context.get("carryover")
        if message is None:
            text = await self.a_get_human_input(">", chat=state)
            out = _to_message(text)
        elif callable(message):
            made = message(self, state.peer, context)
            out = _to_message(await made if inspect.isawaitable(made) else made)
        else:
            out = _to_message(message)
        if carryover:
            lines = carryover if isinstance(carryover, list) else [carryover]
            text = "\n".join(str(line) for line in lines)
            out["content"] = f"{out.get('content') or ''}\nContext: \n{text}"
        return out

    async def _handle_turn(self, state: ChatState, turn: Turn) -> TurnReply:
        for earlier in turn.backlog:
            name = str(earlier.get("name"))
            received = self._record(state, earlier, sent=False, sender=name)
            if not state.silent:
                print_message(name, self.name, received)
        if turn.message is not None:
            received = self._record(state, turn.message, sent=False, sender=turn.sender)
            if not state.silent:
                print_message(received.get("name", turn.sender), self.name, received)
            if _logging.logging_enabled():
                _logging.log_received(self, received, turn.sender)
        if not turn.request_reply:
            return _NO_REPLY
        reply = await self._reply_chain(state, state.messages, state.peer)
        if reply is None:
            return _NO_REPLY
        recorded = self._record(state, _to_message(reply), sent=True, sender=self.name, fresh=True)
        return TurnReply(message=recorded)

    async def _handle_summarize(self, state: ChatState, request: Summarize) -> str:
        method = request.method
        if method is None or method == "last_msg":
            for message in reversed(state.messages):
                content = message.get("content")
                if isinstance(content, str):
                    return _TERMINATE_RE.sub("", content.strip()).strip()
            return ""
        if method == "reflection_with_llm":
            return await self._reflect(state, dict(request.args))
        if callable(method):
            made = method(self, state.peer, dict(request.args))
            result = await made if inspect.isawaitable(made) else made
            return str(result)
        raise AgentConfigError(
            "summary_method must be 'last_msg', 'reflection_with_llm' or a callable;"
            f" got {method!r}"
        )

    async def _reflect(self, state: ChatState, args: dict[str, Any]) -> str:
        prompt = str(args.get("summary_prompt") or DEFAULT_SUMMARY_PROMPT)
        client = await state.model_client()
        if client is None and state.peer is not None and state.peer._model_lease is not None:
            client = await hold(state.stack, state.peer._model_lease)
        if client is None:
            raise AgentConfigError(
                "summary_method='reflection_with_llm' needs a model on one of the two agents"
            )
        messages = _model_messages(self.system_message, state.messages)
        messages.append({"role": "system", "content": prompt})
        response = await client.create(messages)
        state.usage.add(response)
        self._usage.add(response)
        return response.content or ""

    async def _handle_close(self, state: ChatState) -> None:
        self._chats.pop(state.chat_id, None)
        await state.aclose()

    # ------------------------------------------------------------------ the reply chain

    def register_reply(
        self,
        trigger: Trigger,
        reply_func: ReplyFunction,
        position: int = 0,
        config: Any = None,
        reset_config: Callable[[Any], None] | None = None,
        *,
        ignore_async_in_sync_chat: bool = False,
        remove_other_reply_funcs: bool = False,
    ) -> None:
        """Add `reply_func(recipient, messages, sender, config) -> (final, reply)`; functions at
        lower positions run first, and the first final answer is the reply."""
        del ignore_async_in_sync_chat  # every chat is async here
        if remove_other_reply_funcs:
            self._reply_func_list.clear()
        self._chains.clear()
        self._chains_version += 1
        self._reply_func_list.insert(
            position,
            _ReplyEntry(
                trigger=trigger,
                function=reply_func,
                config=config,
                reset_config=reset_config,
                builtin=False,
            ),
        )

    def _matches(self, trigger: Trigger, sender: ConversableAgent | None) -> bool:
        if trigger is None:
            return sender is None
        if isinstance(trigger, list):
            return any(self._matches(each, sender) for each in trigger)
        if isinstance(trigger, str):
            return sender is not None and sender.name == trigger
        if isinstance(trigger, type):
            return sender is not None and isinstance(sender, trigger)
        if isinstance(trigger, ConversableAgent):
            return trigger is sender
        if callable(trigger):
            return bool(trigger(sender))
        raise AgentConfigError(f"unsupported reply trigger {trigger!r}")

    def _chain_for(self, sender: ConversableAgent | None) -> tuple[_ChainLink, ...]:
        """The reply functions that apply to `sender`, in order; triggers other than callables
        are matched once per sender and registration, not on every turn."""
        functions = self._reply_func_list
        key = self._chains_version + len(functions)  # a list changed behind our back shows too
        cached = self._chains.get(sender)
        if cached is not None and cached[0] == key:
            return cached[1]
        links: list[_ChainLink] = []
        for entry in functions:
            matched = self._static_match(entry.trigger, sender)
            if matched is not False:
                links.append((entry, matched is None))
        chain = tuple(links)
        self._chains[sender] = (key, chain)
        return chain

    def _static_match(self, trigger: Trigger, sender: ConversableAgent | None) -> bool | None:
        """`_matches` when its answer cannot change between turns; None when it must be asked
        on every turn (a callable trigger), or when it raises (it raises then, in order)."""
        if _asks_each_time(trigger):
            return None
        try:
            return self._matches(trigger, sender)
        except AgentConfigError:
            return None

    async def _reply_chain(
        self,
        state: ChatState,
        messages: list[Message],
        sender: ConversableAgent | None,
        exclude: Iterable[Callable[..., Any]] = (),
    ) -> str | Message | None:
        skipped = list(exclude) if exclude else None
        for entry, dynamic in self._chain_for(sender):
            if skipped is not None and entry.function in skipped:
                continue
            if dynamic and not self._matches(entry.trigger, sender):
                continue
            if entry.builtin:
                quick = entry.quick
                done = None if quick is None else quick(state, messages, sender)
                if done is None:
                    done = await entry.function(state, messages, sender, entry.config)
                final, reply = done
            else:
                made = entry.function(self, messages, sender, entry.config)
                final, reply = await made if inspect.isawaitable(made) else made
            if final:
                return cast("str | Message | None", reply)
        return (
            self._default_auto_reply
            if isinstance(self._default_auto_reply, str)
            else dict(self._default_auto_reply)
        )

    async def a_generate_reply(
        self,
        messages: list[Message] | None = None,
        sender: ConversableAgent | None = None,
        exclude: Iterable[Callable[..., Any]] = (),
    ) -> str | Message | None:
        """Run the reply functions on `messages` (default: the latest chat with `sender`) outside
        any chat; the counters start fresh and no message is recorded."""
        if messages is None:
            if sender is None:
                raise AgentError("generate_reply needs messages or a sender")
            messages = list(self._conversations.get(sender, []))
        thread = list(messages)
        state = ChatState(
            chat_id="generate_reply",
            owner=self,
            peer=sender,
            messages=thread,
            silent=True,
            model=self._model_lease,
            code=self._chat_code(thread, None),
        )
        try:
            return await self._reply_chain(state, state.messages, sender, exclude)
        finally:
            await state.aclose()

    def generate_reply(
        self,
        messages: list[Message] | None = None,
        sender: ConversableAgent | None = None,
        exclude: Iterable[Callable[..., Any]] = (),
    ) -> str | Message | None:
        """Blocking `a_generate_reply`, for plain scripts."""
        return run_sync(
            lambda: self.a_generate_reply(messages, sender, exclude),
            "generate_reply",
            "a_generate_reply",
        )

    # -- built-in reply functions: (state, messages, sender, config) -> (final, reply)

    def _termination_quick(
        self, state: ChatState, messages: list[Message], sender: ConversableAgent | None
    ) -> tuple[bool, Any] | None:
        """With no human to ask, termination and the auto-reply limit decide without awaiting."""
        if self.human_input_mode != "NEVER":
            return None
        terminating = self._is_termination_msg(messages[-1] if messages else {})
        if terminating or state.consecutive_auto_reply >= self._max_for(sender):
            state.consecutive_auto_reply = 0
            return _STOP
        state.consecutive_auto_reply += 1
        return _PASS

    async def _check_termination_and_human_reply(
        self,
        state: ChatState,
        messages: list[Message],
        sender: ConversableAgent | None,
        config: Any,
    ) -> tuple[bool, str | Message | None]:
        quick = self._termination_quick(state, messages, sender)
        if quick is not None:
            return quick
        message = messages[-1] if messages else {}
        peer = sender.name if sender is not None else "the sender"
        terminating = self._is_termination_msg(message)
        answer: str | None = None
        if self.human_input_mode == "ALWAYS":
            answer = await self.a_get_human_input(
                f"Replying as {self.name}. Give feedback to {peer}. Press enter to skip and use"
                " the auto-reply, or type 'exit' to end the conversation: ",
                chat=state,
            )
            if not answer and terminating:
                answer = "exit"
        elif state.consecutive_auto_reply >= self._max_for(sender) or terminating:
            if self.human_input_mode == "NEVER":
                answer = "exit"
            else:
                answer = await self.a_get_human_input(
                    f"Replying as {self.name}. Give feedback to {peer}. Press enter or type"
                    " 'exit' to stop the conversation: ",
                    chat=state,
                )
                answer = answer or "exit"
        if answer == "exit":
            state.consecutive_auto_reply = 0
            return True, None
        if answer:
            state.consecutive_auto_reply = 0
            calls = message.get("tool_calls")
            if calls:
                responses = [
                    {"tool_call_id": call.get("id"), "role": "tool", "content": answer}
                    for call in calls
                ]
                return True, {"role": "tool", "tool_responses": responses, "content": answer}
            return True, answer
        state.consecutive_auto_reply += 1
        if self.human_input_mode != "NEVER" and not state.silent:
            sys.stdout.write("\n>>>>>>>> NO HUMAN INPUT: USING AUTO REPLY...\n")
        return False, None

    async def _tool_calls_reply(
        self,
        state: ChatState,
        messages: list[Message],
        sender: ConversableAgent | None,
        config: Any,
    ) -> tuple[bool, Message | None]:
        message = messages[-1] if messages else {}
        calls = message.get("tool_calls")
        if not calls or message.get("role") == "assistant":
            return False, None
        results = await run_tool_calls(self._function_map.get, calls)
        responses = [
            {"tool_call_id": tool_call_id(call), "role": "tool", "content": text}
            for call, text in zip(calls, results, strict=True)
        ]
        return True, {"role": "tool", "tool_responses": responses, "content": "\n\n".join(results)}

    def _code_execution_quick(
        self, state: ChatState, messages: list[Message], sender: ConversableAgent | None
    ) -> tuple[bool, Any] | None:
        return _PASS if self._code is None else None

    async def _code_execution_reply(
        self,
        state: ChatState,
        messages: list[Message],
        sender: ConversableAgent | None,
        config: Any,
    ) -> tuple[bool, str | None]:
        code = self._code
        if code is None:
            return False, None
        peer = state.peer
        text = code_to_run(
            messages, code.last_n_messages, lambda m: may_run(m, code.execute_from, peer)
        )
        if text is None:
            return False, None
        return True, await state.run_code(text)

    async def _model_reply(
        self,
        state: ChatState,
        messages: list[Message],
        sender: ConversableAgent | None,
        config: Any,
    ) -> tuple[bool, str | Message | None]:
        client = state.client
        if client is None:
            client = await state.model_client()
            if client is None:
                return False, None
        tools: list[dict[str, Any]] | None = None
        if self._llm_tools or (self._llm is not None and self._llm.tools):
            tools = [tool.schema() for tool in self._llm_tools.values()]
            if self._llm is not None:
                tools += [dict(tool) for tool in self._llm.tools]
        response = await client.create(
            self._model_messages_for(state, messages),
            tools=tools or None,
            stream=self._stream,
            on_token=None if state.silent or not self._stream else _show_token,
        )
        state.usage.add(response)
        self._usage.add(response)
        if _logging.logging_enabled():  # runtime_logging records the call and its cost
            _logging.log_agent_completion(self, self._model_messages_for(state, messages), response)
        if response.tool_calls:
            return True, response.to_message()
        if response.content is None:
            return False, None
        return True, response.content

    def _model_messages_for(
        self, state: ChatState, messages: list[Message]
    ) -> list[dict[str, Any]]:
        """The model's view of `messages`; for the chat's own thread it is kept per chat and
        extended with the new messages only (the thread only grows; a thread that was replaced
        or cut is converted afresh)."""
        if messages is not state.messages:
            return _model_messages(self.system_message, messages)
        cache = state.model_messages
        done = state.model_messages_done
        if (
            cache is None
            or done > len(messages)
            or (done and messages[done - 1] is not state.model_messages_last)
        ):
            cache = state.model_messages = [{"role": "system", "content": self.system_message}]
            done = 0
        elif cache[0]["content"] != self.system_message:
            cache[0] = {"role": "system", "content": self.system_message}
        end = len(messages)
        while done < end:
            _add_model_message(cache, messages[done])
            done += 1
        state.model_messages_done = end
        state.model_messages_last = messages[end - 1] if end else None
        return cache.copy()  # the client may keep it; later turns extend only our own list

    # ------------------------------------------------------------------ human input

    async def a_get_human_input(self, prompt: str, *, chat: ChatState | None = None) -> str:
        """Ask this agent's input provider; the answer is recorded in the chat's `human_input`."""
        request = InputRequest(
            prompt=prompt,
            agent=self.name,
            chat_id=chat.chat_id if chat is not None else None,
            sender=chat.peer.name if chat is not None and chat.peer is not None else None,
        )
        answer = await self.input_provider.get_input(request)
        if chat is not None:
            chat.human_input.append(answer)
        return answer

    # ------------------------------------------------------------------ tools

    def _execution_tool(self, function: Callable[..., Any], name: str | None) -> Tool:
        described = name or getattr(function, "__name__", "tool")
        return Tool.from_function(
            function, name=name, description=inspect.getdoc(function) or described
        )

    def register_for_llm(
        self, *, name: str | None = None, description: str | None = None
    ) -> Callable[[F], F]:
        """Decorator: offer the function to this agent's model as a tool (schema from hints).

        Raises:
            ToolRegistrationError: this agent has no model, or the function has no description.
        """

        def decorate(function: F) -> F:
            if self._model_lease is None:
                raise ToolRegistrationError(
                    f"{self.name} has no llm_config, so no model can call {name or function!r}"
                )
            tool = Tool.from_function(function, name=name, description=description)
            self._llm_tools[tool.name] = tool
            return function

        return decorate

    def register_for_execution(self, name: str | None = None) -> Callable[[F], F]:
        """Decorator: let this agent run the function when a model asks for it."""

        def decorate(function: F) -> F:
            tool = self._execution_tool(function, name)
            self._function_map[tool.name] = tool
            return function

        return decorate

    def register_function(self, function_map: Mapping[str, Callable[..., Any]]) -> None:
        """Add functions this agent executes, by name (AutoGen's `function_map` form)."""
        for fname, function in function_map.items():
            self._function_map[fname] = self._execution_tool(function, fname)

    @property
    def function_map(self) -> dict[str, Callable[..., Any]]:
        return {tool_name: tool.function for tool_name, tool in self._function_map.items()}

    @property
    def tools(self) -> list[Tool]:
        """The tools this agent's model is offered."""
        return list(self._llm_tools.values())

    def can_execute_function(self, name: str | list[str]) -> bool:
        names = [name] if isinstance(name, str) else name
        return all(each in self._function_map for each in names)

    # ------------------------------------------------------------------ chats

    async def a_initiate_chat(
        self,
        recipient: ConversableAgent,
        message: str | Mapping[str, Any] | Callable[..., Any] | None = None,
        *,
        max_turns: int | None = None,
        summary_method: str | Callable[..., Any] | None = "last_msg",
        summary_args: Mapping[str, Any] | None = None,
        clear_history: bool = True,
        silent: bool = False,
        runtime: Runtime | None = None,
        **context: Any,
    ) -> ChatResult:
        """Chat with `recipient`, starting with `message`, until one side stops replying.

        The chat runs on `runtime`, or on a private runtime for its duration. `max_turns` bounds
        the messages this agent sends. Extra keyword arguments are the chat's context (e.g.
        `carryover`), passed to a callable `message`.

        Raises:
            ModelError: a model call failed for good (after retries and fallbacks).
            DockerUnavailableError: code must run in Docker and no engine answers.
            HumanInputError: the input provider could not answer.
        """
        if max_turns is not None and max_turns < 1:
            raise AgentConfigError(f"max_turns must be at least 1; got {max_turns}")
        async with runtime_scope(runtime) as rt:
            return await run_two_agent_chat(
                rt,
                self,
                recipient,
                message=message,
                max_turns=max_turns,
                summary_method=summary_method,
                summary_args=dict(summary_args or {}),
                clear_history=clear_history,
                silent=silent,
                context=context,
            )

    def initiate_chat(
        self,
        recipient: ConversableAgent,
        message: str | Mapping[str, Any] | Callable[..., Any] | None = None,
        *,
        max_turns: int | None = None,
        summary_method: str | Callable[..., Any] | None = "last_msg",
        summary_args: Mapping[str, Any] | None = None,
        clear_history: bool = True,
        silent: bool = False,
        **context: Any,
    ) -> ChatResult:
        """Blocking `a_initiate_chat` for plain scripts (it runs its own event loop).

        Raises:
            EventLoopRunningError: called inside a running event loop; await
                `a_initiate_chat` there instead.
        """
        return run_sync(
            lambda: self.a_initiate_chat(
                recipient,
                message,
                max_turns=max_turns,
                summary_method=summary_method,
                summary_args=summary_args,
                clear_history=clear_history,
                silent=silent,
                **context,
            ),
            "initiate_chat",
            "a_initiate_chat",
        )

    async def a_initiate_chats(
        self, chat_queue: Sequence[Mapping[str, Any]], *, runtime: Runtime | None = None
    ) -> list[ChatResult] | dict[Any, ChatResult]:
        """Run a queue of chats, this agent being each entry's `sender` unless it names one.

        Entries without `chat_id` run in order, each with the earlier summaries as carryover,
        and give a list. With `chat_id`s (AutoGen's async form) chats run concurrently once
        their `prerequisites` finished, and the results come as a dict by chat id.

        Raises:
            AgentConfigError: an entry has no recipient, or its chat ids or prerequisites are
                inconsistent.
        """
        from ._sequential import run_by_prerequisites, run_in_order, wants_prerequisites

        if wants_prerequisites(chat_queue):
            return await run_by_prerequisites(chat_queue, sender=self, runtime=runtime)
        return await run_in_order(chat_queue, sender=self, runtime=runtime)

    def initiate_chats(self, chat_queue: Sequence[Mapping[str, Any]]) -> list[ChatResult]:
        """Run a queue of chats in order (blocking); see `a_initiate_chats`."""
        from ._sequential import run_in_order

        return run_sync(
            lambda: run_in_order(chat_queue, sender=self), "initiate_chats", "a_initiate_chats"
        )

    # ------------------------------------------------------------------ run (AG2's one call)

    async def a_run(
        self,
        recipient: ConversableAgent | None = None,
        clear_history: bool = True,
        *,
        message: str | Mapping[str, Any] | None = None,
        max_turns: int | None = None,
        summary_method: str | Callable[..., Any] | None = "last_msg",
        summary_args: Mapping[str, Any] | None = None,
        tools: Iterable[Any] | None = None,
        user_input: bool = False,
        msg_to: Literal["agent", "user"] = "agent",
        runtime: Runtime | None = None,
    ) -> AsyncRunResponse:
        """Chat once and return an `AsyncRunResponse` (`await response.summary`,
        `await response.process()`); without a recipient a user agent is made for the call,
        which runs `tools` for this agent.

        Raises:
            AgentConfigError: a tool has no description.
            ModelError: a model call failed for good.
        """
        from ._run import run_agent

        return AsyncRunResponse(
            await run_agent(
                self,
                recipient,
                message=message,
                clear_history=clear_history,
                max_turns=max_turns,
                summary_method=summary_method,
                summary_args=summary_args,
                tools=tools,
                user_input=user_input,
                msg_to=msg_to,
                runtime=runtime,
            )
        )

    def run(
        self,
        recipient: ConversableAgent | None = None,
        clear_history: bool = True,
        *,
        message: str | Mapping[str, Any] | None = None,
        max_turns: int | None = None,
        summary_method: str | Callable[..., Any] | None = "last_msg",
        summary_args: Mapping[str, Any] | None = None,
        tools: Iterable[Any] | None = None,
        user_input: bool = False,
        msg_to: Literal["agent", "user"] = "agent",
    ) -> RunResponse:
        """Chat once and return a `RunResponse` (`messages`, `summary`, `process()`); blocking,
        for plain scripts (see `a_run`)."""
        from ._run import run_agent

        return run_sync(
            lambda: run_agent(
                self,
                recipient,
                message=message,
                clear_history=clear_history,
                max_turns=max_turns,
                summary_method=summary_method,
                summary_args=summary_args,
                tools=tools,
                user_input=user_input,
                msg_to=msg_to,
                runtime=None,
            ),
            "run",
            "a_run",
        )

    def register_nested_chats(
        self,
        chat_queue: Sequence[Mapping[str, Any]],
        trigger: Trigger,
        reply_func_from_nested_chats: str | Callable[..., Any] = "summary_from_nested_chats",
        position: int = 2,
        use_async: bool | None = None,
        **kwargs: Any,
    ) -> None:
        """Answer senders matching `trigger` by running `chat_queue` (see `_nested`).

        Raises:
            AgentConfigError: the queue is empty, an entry has no recipient, or `use_async`
                is set and an entry has no chat_id.
        """
        from ._nested import register_nested_chats

        del kwargs  # AutoGen passes reply-registration options through; moot needs none
        register_nested_chats(
            self, chat_queue, trigger, reply_func_from_nested_chats, position, use_async=use_async
        )

    async def a_send(
        self,
        message: str | Mapping[str, Any],
        recipient: ConversableAgent,
        request_reply: bool | None = None,
        silent: bool = False,
        *,
        runtime: Runtime | None = None,
    ) -> None:
        """Send `message` to `recipient`, continuing the latest chat with it; with a reply
        requested (the default) the exchange runs until one side stops replying."""
        async with runtime_scope(runtime) as rt:
            await run_two_agent_chat(
                rt,
                self,
                recipient,
                message=message,
                max_turns=None,
                summary_method=None,
                summary_args={},
                clear_history=False,
                silent=silent,
                context={},
                request_reply=request_reply is not False,
            )

    def send(
        self,
        message: str | Mapping[str, Any],
        recipient: ConversableAgent,
        request_reply: bool | None = None,
        silent: bool = False,
    ) -> None:
        """Blocking `a_send`."""
        run_sync(lambda: self.a_send(message, recipient, request_reply, silent), "send", "a_send")


def register_function(
    function: Callable[..., Any],
    *,
    caller: ConversableAgent,
    executor: ConversableAgent,
    name: str | None = None,
    description: str,
) -> None:
    """Offer `function` to `caller`'s model as a tool and let `executor` run it."""
    caller.register_for_llm(name=name, description=description)(function)
    executor.register_for_execution(name=name)(function)
