"""`ConversableAgent`: AutoGen's classic agent, acting through one participant actor per chat."""

from __future__ import annotations

import contextlib
import functools
import inspect
import re
import sys
import warnings
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal, TypeVar, cast

from moot.models import (
    LLMConfig,
    ModelClient,
    ModelRequest,
    UsageSummary,
    UsageTracker,
    client_from_llm_config,
)
from moot.runtime import AgentContext, AgentId, Runtime

from . import _logging
from ._agent import Agent
from ._chat import (
    AsyncRunResponse,
    ChatResult,
    ChatState,
    RunResponse,
    call_blocking,
    print_message,
    run_sync,
    run_two_agent_chat,
    runtime_scope,
)
from ._code_execution import ChatCode, CodeExecution, code_to_run, may_run
from ._distributed import (
    attach_distributed,
    hosted_agent,
    is_distributed,
    register_chat_messages,
    shared_type,
    usage_to_wire,
)
from ._errors import (
    AgentConfigError,
    AgentError,
    AmbiguousPeerError,
    CarryoverTypeError,
    InvalidMessageError,
    NoConversationError,
    NoMessagesError,
    ToolRegistrationError,
)
from ._hooks import Hooks
from ._human_input import ConsoleInputProvider, InputProvider, InputRequest
from ._llm_setup import read_llm_config
from ._mcp import McpTool, mcp_servers
from ._participant import (
    ChatParticipant,
    ChatReport,
    Message,
    OpenChat,
    ReportChat,
    Say,
    Summarize,
    Turn,
    TurnReply,
)
from ._resources import Hold, Holdable, Lease, ResourceHolder, borrowed, hold
from ._structured import DEFAULT_MAX_REPAIRS, StructuredOutput
from ._tool_registry import ApiStyle, ToolRegistry, take_legacy_functions
from ._tools import Tool, run_tool_calls, tool_call_id
from .approvals import (
    ApprovalPolicy,
    ApprovalRequest,
    check_policy,
    decide,
    denied_code,
    denied_tool,
    tool_calls_text,
)

if TYPE_CHECKING:
    from contextlib import AbstractAsyncContextManager

    import httpx
    import pydantic

    from moot.executors import Executor
    from moot.journal import ChatStore
    from moot.models import ModelResponse, TokenCallback

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
_SUMMARY_METHODS = (None, "last_msg", "reflection_with_llm")


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
    raise InvalidMessageError(f"a message must be a str or a dict, not {type(message).__name__}")


def _check_message(message: Mapping[str, Any]) -> None:
    if not (
        "content" in message
        or "tool_calls" in message
        or "tool_responses" in message
        or "function_call" in message
    ):
        raise InvalidMessageError(
            "a message needs 'content', 'tool_calls', 'tool_responses' or 'function_call';"
            f" got keys {sorted(message)}"
        )


def _summary_text(result: Any) -> str:
    """A summary function's result as text: a message's content, "" for None."""
    if result is None:
        return ""
    if isinstance(result, Mapping):
        content = result.get("content")
        return "" if content is None else str(content)
    return str(result)


def with_carryover(message: str | Mapping[str, Any], carryover: Any) -> str | Message:
    """`message` with the earlier chats' `carryover` (a str, or a list of str or messages)
    appended to its text as a "Context:" section.

    Raises:
        CarryoverTypeError: the carryover is neither a str nor a list.
    """
    if carryover is None or carryover == "" or carryover == []:
        return message if isinstance(message, str) else dict(message)
    if isinstance(carryover, str):
        text = carryover
    elif isinstance(carryover, list):
        text = "\n".join(
            str(item.get("content") or "") if isinstance(item, Mapping) else str(item)
            for item in carryover
        )
    else:
        raise CarryoverTypeError(
            f"carryover must be a str or a list; got {type(carryover).__name__}"
        )
    context = f"\nContext: \n{text}"
    if isinstance(message, str):
        return message + context
    out = dict(message)
    content = out.get("content")
    if isinstance(content, list):
        out["content"] = [*content, {"type": "text", "text": context}]
    else:
        out["content"] = f"{content or ''}{context}"
    return out


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
    if named or (role == "function" and isinstance(name, str)):
        item["name"] = name
    if message.get("tool_calls"):
        item["tool_calls"] = message["tool_calls"]
    if message.get("function_call"):
        item["function_call"] = message["function_call"]
    out.append(item)


def _asks_each_time(trigger: Trigger) -> bool:
    """Whether a trigger is, or contains, a callable to call with each sender."""
    if isinstance(trigger, list):
        return any(_asks_each_time(each) for each in trigger)
    return callable(trigger) and not isinstance(trigger, type | ConversableAgent)


def _tool_calls_quick(
    state: ChatState, messages: list[Message], sender: ConversableAgent | None
) -> tuple[bool, Any] | None:
    """Most turns carry no tool or function calls to run: the reply passes without awaiting."""
    message = messages[-1] if messages else {}
    calls = message.get("tool_calls")
    if not calls and "function_call" not in message:  # most turns: one lookup, no call
        return _PASS
    if not calls and not message.get("function_call"):
        return _PASS
    return None


_BUILTIN_NAMES = {
    "generate_oai_reply": "_model_reply",
    "a_generate_oai_reply": "_model_reply",
    "generate_code_execution_reply": "_code_execution_reply",
    "a_generate_code_execution_reply": "_code_execution_reply",
    "generate_tool_calls_reply": "_tool_calls_only_reply",
    "a_generate_tool_calls_reply": "_tool_calls_only_reply",
    "generate_function_call_reply": "_function_call_reply",
    "a_generate_function_call_reply": "_function_call_reply",
    "check_termination_and_human_reply": "_check_termination_and_human_reply",
    "a_check_termination_and_human_reply": "_check_termination_and_human_reply",
}
"""AutoGen's public built-in reply functions, and the internal one each stands for."""


def _builtin_name(function: Callable[..., Any]) -> str | None:
    """The internal built-in that `function` (`ConversableAgent.generate_oai_reply`, an agent's
    bound `a_generate_oai_reply`, ...) stands for; None for any other function."""
    target = getattr(function, "__func__", function)
    name = getattr(target, "__name__", None)
    internal = _BUILTIN_NAMES.get(name) if isinstance(name, str) else None
    if internal is None or getattr(ConversableAgent, str(name)) is not target:
        return None
    return internal


def _replaced(agent: ConversableAgent, name: str) -> bool:
    """Whether `agent` has its own `name` method: set on the instance (a mock) or overridden."""
    return name in vars(agent) or getattr(type(agent), name) is not getattr(ConversableAgent, name)


def _check_trigger(trigger: Trigger) -> None:
    if isinstance(trigger, list):
        for each in trigger:
            _check_trigger(each)
        return
    if trigger is None or isinstance(trigger, str | type | ConversableAgent) or callable(trigger):
        return
    raise AgentConfigError(
        "a reply trigger must be a class, a str (an agent name), an agent, a callable, None or a"
        f" list of these; got {trigger!r}"
    )


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


class ConversableAgent(Agent):
    """An agent that talks: it replies to messages with its reply functions, in order:

    termination and human input, then tool calls, then code execution, then the model. One agent
    object may take part in many chats at once; each chat has its own participant actor on the
    runtime and its own history and counters.
    """

    DEFAULT_SYSTEM_MESSAGE = "You are a helpful assistant."
    _reply_override: ClassVar[Literal["async", "sync"] | None] = None

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
        chat_messages: Mapping[ConversableAgent, list[Message]] | None = None,
        *,
        input_provider: InputProvider | None = None,
        model_client: ModelClient | None = None,
        approve_code: ApprovalPolicy = "never",
        approve_tools: ApprovalPolicy = "never",
        response_format: type[pydantic.BaseModel] | Mapping[str, Any] | None = None,
        max_format_repairs: int = DEFAULT_MAX_REPAIRS,
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
        self._system_entry: dict[str, Any] | None = None  # see `_system_model_message`
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
        # Approvals (see `approvals`): "never" runs code and tools without asking.
        self.approve_code = check_policy(approve_code, "approve_code")
        self.approve_tools = check_policy(approve_tools, "approve_tools")
        self.code_execution_config = code_execution_config
        self._code = CodeExecution.from_config(code_execution_config)
        self._llm: LLMConfig | None = None
        self._stream = False
        # Where a streamed answer's tokens go instead of the console (e.g. `moot serve`'s event
        # stream), also in a silent chat; answers stream when the llm_config says "stream".
        self.token_sink: TokenCallback | None = None
        self._http: httpx.AsyncClient | None = None
        self._tool_registry = ToolRegistry()
        if llm_config is None or llm_config is False:
            self.llm_config: dict[str, Any] | Literal[False] = False
        else:
            config, self._http, self.llm_config = read_llm_config(llm_config, name)
            config, legacy = take_legacy_functions(config)
            self._llm, self._stream = _without_stream(config)
            self._tool_registry.start(self.llm_config, self._llm.tools, legacy)
        if _logging.logging_enabled():  # runtime_logging records the agents it sees built
            _logging.log_new_agent(
                self, {"name": name, "system_message": system_message, "llm_config": llm_config}
            )
        self._given_client = model_client
        # Structured output (see `_structured`): the answer's format, or None for free text.
        self._structured = (
            None
            if response_format is None
            else StructuredOutput(response_format, max_repairs=max_format_repairs)
        )
        self._model_lease: Lease[ModelClient] | None = None
        if model_client is not None or self._llm is not None:
            self._model_lease = Lease(self._open_client)
        self._executor_lease: Lease[Executor] | None = None
        if self._code is not None:
            self._executor_lease = Lease(self._code.open_executor)
        # The thread of the chat that works in code_execution_config's work_dir: the agent's
        # first chat, continued by chats that keep its history (see `_code_execution`).
        self._work_dir_thread: list[Message] | None = None
        self._function_map: dict[str, Tool] = {}
        for fname, function in (function_map or {}).items():
            self._function_map[fname] = self._execution_tool(function, fname)
        self._reply_func_list: list[_ReplyEntry] = []
        # Per sender, the reply functions whose triggers match it; rebuilt when the list changes.
        self._chains: dict[ConversableAgent | None, tuple[int, tuple[_ChainLink, ...]]] = {}
        self._chains_version = 0
        self._conversations: dict[ConversableAgent, list[Message]] = {
            peer: list(thread) for peer, thread in (chat_messages or {}).items()
        }
        # Per peer, as AutoGen keeps them: auto-replies in a row, and whether to reply on receipt.
        self._consecutive_auto_reply_counter: defaultdict[ConversableAgent | None, int] = (
            defaultdict(int)
        )
        self.reply_at_receive: defaultdict[ConversableAgent, bool] = defaultdict(bool)
        self._hooks = Hooks()
        self._chats: dict[str, ChatState] = {}
        self._usage = UsageTracker()
        safe = _TYPE_UNSAFE.sub("_", name)[:48]
        # Unique per agent object: the runtime's registration holds this agent, so its id
        # cannot be reused by another agent while the type is registered.
        self._actor_type = f"moot.agent.{safe}.{id(self):x}"
        # Registered last first: human/termination, tools, code, model is the order they run.
        for internal in (
            "_model_reply",
            "_code_execution_reply",
            "_tool_calls_reply",
            "_check_termination_and_human_reply",
        ):
            self._reply_func_list.insert(0, self._builtin_entry(internal, [ConversableAgent, None]))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"

    # ------------------------------------------------------------------ properties

    @property
    def system_message(self) -> str:
        return self._system_message

    def update_system_message(self, system_message: str) -> None:
        """Replace the system message used for later model calls."""
        self._system_message = system_message

    def max_consecutive_auto_reply(self, sender: ConversableAgent | None = None) -> int:
        """The auto-reply limit: for every sender, or the one set for `sender`."""
        return self._max_for(sender)

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
    def chat_messages(self) -> defaultdict[ConversableAgent, list[Message]]:
        """Per peer, the messages of the latest chat with it (this agent's view); a peer it
        has not talked with reads as an empty list, as in AutoGen."""
        return defaultdict(list, self._conversations)

    def last_message(self, agent: ConversableAgent | None = None) -> Message | None:
        """The last message of the latest chat with `agent` (or with the only peer).

        Raises:
            AmbiguousPeerError: `agent` is None and this agent has talked with several peers.
            NoConversationError: this agent has no conversation with `agent`.
        """
        if agent is None:
            if not self._conversations:
                return None
            if len(self._conversations) > 1:
                raise AmbiguousPeerError(
                    f"{self.name} has talked with several agents; pass the one you mean"
                )
            thread = next(iter(self._conversations.values()))
        else:
            found = self._conversations.get(agent)
            if found is None:
                raise NoConversationError(f"{self.name} has no conversation with {agent.name}")
            thread = found
        return thread[-1] if thread else None

    def reset(self) -> None:
        """Forget finished conversations, counters and reply-function state (not usage)."""
        self._conversations.clear()
        self.reset_consecutive_auto_reply_counter()
        self.reply_at_receive.clear()
        for entry in self._reply_func_list:
            if entry.reset_config is not None:
                entry.reset_config(entry.config)

    def clear_history(
        self, recipient: ConversableAgent | None = None, nr_messages_to_preserve: int | None = None
    ) -> None:
        """Forget the latest conversation with `recipient`, or all of them but, with
        `nr_messages_to_preserve`, their last messages (one more when the first kept is a tool
        response, so no answer is kept without its call). As in AutoGen, the count is ignored
        with a `recipient`."""
        if recipient is not None:
            self._conversations.pop(recipient, None)
        elif not nr_messages_to_preserve:
            self._conversations.clear()
        else:
            for peer, thread in list(self._conversations.items()):
                keep = nr_messages_to_preserve
                if len(thread) > keep and "tool_responses" in thread[-keep]:
                    keep += 1
                self._conversations[peer] = thread[-keep:]

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
        if self._http is not None:
            return client_from_llm_config(self._llm, http=self._http)
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
        if attach_distributed(runtime, self):  # hosted under a shared name (see _distributed)
            return
        runtime.register(self._actor_type, self._participant_factory, idle_timeout=300.0)
        holder = f"{self._actor_type}.resources"
        runtime.register(holder, self._holder_factory)
        await runtime.send(Hold(), AgentId(holder))

    def participant_id(self, runtime: Runtime, chat_id: str) -> AgentId:
        """The address of this agent's participant in chat `chat_id` on `runtime`; call
        `attach(runtime)` first."""
        if is_distributed(runtime, self):
            return AgentId(shared_type(self.name), chat_id)
        return AgentId(self._actor_type, chat_id)

    # -- chats on workers (see `_distributed`) ---------------------------------------------

    def _register_messages(self, runtime: Runtime) -> None:
        """Register the messages this agent's participants speak with `runtime.codec`."""
        register_chat_messages(runtime)

    def _handle_open(self, runtime: Runtime, chat_id: str, request: OpenChat) -> None:
        peer = None if request.peer is None else hosted_agent(runtime, request.peer)
        existing = self._chats.get(chat_id)
        if existing is not None:  # opened again (a driver resuming): the driver's history wins
            existing.messages[:] = [dict(message) for message in request.history]
            existing.model_messages = None
            existing.model_messages_done = 0
            existing.model_messages_last = None
            return
        state = self.open_chat(
            chat_id,
            peer,
            clear_history=request.clear_history,
            silent=request.silent,
            keep_counter=request.keep_counter,
        )
        state.messages.extend(dict(message) for message in request.history)

    def _handle_report(self, state: ChatState, request: ReportChat) -> ChatReport:
        return ChatReport(
            messages=tuple(state.messages) if request.messages else (),
            usage=usage_to_wire(state.usage.summary()),
            human_input=tuple(state.human_input),
        )

    def _holder_factory(self, context: AgentContext) -> ResourceHolder:
        leases: list[Holdable] = list(mcp_servers(self._function_map.values()))
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
        keep_counter: bool = False,
    ) -> ChatState:
        """Start this agent's side of a chat; its participant actor works on the returned state.

        With `clear_history=False` the chat continues the latest thread with `peer`; with
        `keep_counter` it continues this agent's auto-reply count for `peer` (a `send`), else
        the count starts at 0 (a new chat). The count is kept for `peer` when the chat closes.
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
        if keep_counter:
            state.consecutive_auto_reply = self._consecutive_auto_reply_counter[peer]
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
        if "content" not in message:  # most messages have content: no call to check them
            _check_message(message)
        role = message.get("role")
        recorded: Message
        # A call is the model's output, so it is "assistant" on both sides, as in AutoGen.
        mine = sent or (
            ("tool_calls" in message or "function_call" in message)  # no calls on most turns
            and bool(message.get("tool_calls") or message.get("function_call"))
        )
        if role == "tool" or role == "function":
            recorded = cast("Message", message) if fresh else dict(message)
        elif not sent and role == ("assistant" if mine else "user") and "name" in message:
            # Already in this agent's roles and named (a group chat's broadcast): kept as it is,
            # shared with the group's history instead of copied once per participant.
            recorded = cast("Message", message)
        elif fresh:
            recorded = cast("Message", message)
            recorded["role"] = "assistant" if mine else "user"
        else:
            recorded = {**message, "role": "assistant" if mine else "user"}
        if "name" not in recorded:
            recorded["name"] = sender
        state.messages.append(recorded)
        return recorded

    async def _handle_say(self, state: ChatState, say: Say) -> Message:
        if not say.record:
            message = _to_message(say.message)
            _check_message(message)
            return message
        made = await self._initial_message(state, say.message, dict(say.context))
        if self._hooks.before_send:
            made = self._hooks.process_before_send(self, made, state.peer, state.silent)
        return self._record(state, _to_message(made), sent=True, sender=self.name, fresh=True)

    async def _initial_message(
        self, state: ChatState, message: Any, context: dict[str, Any]
    ) -> str | Message:
        if message is None:
            made: Any = await self._human_answer(">", state)
        elif callable(message):
            made = message(self, state.peer, context)
            made = await made if inspect.isawaitable(made) else made
        else:
            made = message
        if not isinstance(made, str | Mapping):
            raise InvalidMessageError(
                f"a message must be a str or a dict, not {type(made).__name__}"
            )
        return with_carryover(made, context.get("carryover"))

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
        if self._reply_override is None:
            reply = await self._reply_chain(state, state.messages, state.peer)
        else:
            reply = await self._overridden_reply(state)
        if reply is None:
            return _NO_REPLY
        if self._hooks.before_send:
            reply = self._hooks.process_before_send(self, reply, state.peer, state.silent)
        recorded = self._record(state, _to_message(reply), sent=True, sender=self.name, fresh=True)
        return TurnReply(message=recorded)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Note whether the subclass replaces `a_generate_reply` or `generate_reply`: AutoGen
        chats reply through them, so such a class's turns must go through its version."""
        super().__init_subclass__(**kwargs)
        if cls.a_generate_reply is not ConversableAgent.a_generate_reply:
            cls._reply_override = "async"
        elif cls.generate_reply is not ConversableAgent.generate_reply:
            cls._reply_override = "sync"
        else:
            cls._reply_override = None

    async def _overridden_reply(self, state: ChatState) -> str | Message | None:
        """A turn's reply from the subclass's own `a_generate_reply` / `generate_reply` (the
        sync one in a worker thread); the chat's auto-reply count is shared with it."""
        peer = state.peer
        self._consecutive_auto_reply_counter[peer] = state.consecutive_auto_reply
        messages = state.own_thread()  # user code gets the list: no entry shared with others
        try:
            if self._reply_override == "async":
                return await self.a_generate_reply(messages=messages, sender=peer)
            return await call_blocking(self.generate_reply, messages=messages, sender=peer)
        finally:
            state.consecutive_auto_reply = self._consecutive_auto_reply_counter[peer]

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
            return _summary_text(result)
        raise AgentConfigError(
            "summary_method must be 'last_msg', 'reflection_with_llm' or a callable;"
            f" got {method!r}"
        )

    async def _reflect(self, state: ChatState, args: dict[str, Any]) -> str:
        """Ask a model to sum up the chat: the recipient's, else this agent's (as AutoGen does);
        `summary_prompt` is added as a message of role `summary_role` (default "system")."""
        prompt = str(args.get("summary_prompt") or DEFAULT_SUMMARY_PROMPT)
        role = str(args.get("summary_role") or "system")
        client: ModelClient | None = None
        if state.peer is not None and state.peer._model_lease is not None:
            client = await hold(state.stack, state.peer._model_lease)
        if client is None:
            client = await state.model_client()
        if client is None:
            raise AgentConfigError(
                "summary_method='reflection_with_llm' needs a model on one of the two agents"
            )
        messages = _model_messages(self.system_message, state.messages)
        messages.append({"role": role, "content": prompt})
        response = await client.create(ModelRequest(messages=messages))
        state.usage.add(response)
        self._usage.add(response)
        return response.content or ""

    async def _handle_close(self, state: ChatState) -> None:
        self._chats.pop(state.chat_id, None)
        self._consecutive_auto_reply_counter[state.peer] = state.consecutive_auto_reply
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
        lower positions run first, and the first final answer is the reply.

        A built-in reply function (`ConversableAgent.generate_oai_reply`, ...) may be given, sync
        or async, bound or not; it runs as the agent's own built-in does.

        Raises:
            AgentConfigError: `trigger` is not a class, str, agent, callable, None or a list of
                these.
        """
        del ignore_async_in_sync_chat  # every chat is async here
        _check_trigger(trigger)
        internal = _builtin_name(reply_func)
        entry = (
            self._builtin_entry(internal, trigger, config)
            if internal is not None
            else _ReplyEntry(
                trigger=trigger,
                function=reply_func,
                config=config,
                reset_config=reset_config,
                builtin=False,
            )
        )
        if remove_other_reply_funcs:
            self._reply_func_list.clear()
        self._chains.clear()
        self._chains_version += 1
        self._reply_func_list.insert(position, entry)

    def _builtin_entry(self, internal: str, trigger: Trigger, config: Any = None) -> _ReplyEntry:
        quick: QuickReply | None = {
            "_code_execution_reply": self._code_execution_quick,
            "_tool_calls_reply": _tool_calls_quick,
            "_tool_calls_only_reply": _tool_calls_quick,
            "_function_call_reply": _tool_calls_quick,
            "_check_termination_and_human_reply": self._termination_quick,
        }.get(internal)
        return _ReplyEntry(
            trigger=trigger,
            function=getattr(self, internal),
            config=config,
            reset_config=None,
            builtin=True,
            quick=quick,
        )

    def _excluded(self, exclude: Iterable[Callable[..., Any]]) -> list[Callable[..., Any]]:
        """`exclude` as the functions in the chain (a public built-in as its internal one)."""
        out: list[Callable[..., Any]] = []
        for function in exclude:
            internal = _builtin_name(function)
            out.append(getattr(self, internal) if internal is not None else function)
        return out

    def _match_trigger(self, trigger: Trigger, sender: ConversableAgent | None) -> bool:
        """Whether `trigger` matches `sender` (AutoGen's name for `_matches`).

        Raises:
            AgentConfigError: an unsupported trigger.
        """
        return self._matches(trigger, sender)

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
        own = messages is not state.messages  # else shared entries are copied before user code
        if self._hooks.before_reply:
            if not own:
                state.own_thread()
                own = True
            messages = self._hooks.process_before_reply(self, messages)
        skipped = self._excluded(exclude) if exclude else None
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
                if not own:
                    state.own_thread()
                    own = True
                made = entry.function(self, messages, sender, entry.config)
                final, reply = await made if inspect.isawaitable(made) else made
            if final:
                return cast("str | Message | None", reply)
        return (
            self._default_auto_reply
            if isinstance(self._default_auto_reply, str)
            else dict(self._default_auto_reply)
        )

    def _detached_state(
        self, messages: list[Message], sender: ConversableAgent | None
    ) -> ChatState:
        """A chat state for reply functions run outside any chat (the counter is this agent's
        for `sender`; `_settle_detached` writes it back)."""
        state = ChatState(
            chat_id="generate_reply",
            owner=self,
            peer=sender,
            messages=messages,
            silent=True,
            model=self._model_lease,
            code=self._chat_code(messages, None),
        )
        state.consecutive_auto_reply = self._consecutive_auto_reply_counter[sender]
        return state

    async def _settle_detached(self, state: ChatState) -> None:
        self._consecutive_auto_reply_counter[state.peer] = state.consecutive_auto_reply
        await state.aclose()

    def _messages_for(
        self, messages: list[Message] | Message | None, sender: ConversableAgent | None
    ) -> list[Message]:
        if messages is None:
            if sender is None:
                raise NoMessagesError("generate_reply needs messages or a sender")
            return list(self._conversations.get(sender, []))
        if isinstance(messages, Mapping):
            return [dict(messages)]
        return list(messages)

    async def a_generate_reply(
        self,
        messages: list[Message] | Message | None = None,
        sender: ConversableAgent | None = None,
        exclude: Iterable[Callable[..., Any]] = (),
        **kwargs: Any,
    ) -> str | Message | None:
        """Run the reply functions on `messages` (default: the latest chat with `sender`) outside
        any chat; no message is recorded. The auto-reply counter is this agent's for `sender`.

        Raises:
            NoMessagesError: neither messages nor a sender.
        """
        del kwargs  # AutoGen passes extras through to reply functions it does not have
        state = self._detached_state(self._messages_for(messages, sender), sender)
        try:
            return await self._reply_chain(state, state.messages, sender, exclude)
        finally:
            await self._settle_detached(state)

    def generate_reply(
        self,
        messages: list[Message] | Message | None = None,
        sender: ConversableAgent | None = None,
        exclude: Iterable[Callable[..., Any]] = (),
        **kwargs: Any,
    ) -> str | Message | None:
        """Blocking `a_generate_reply`, for plain scripts.

        Raises:
            NoMessagesError: neither messages nor a sender.
            EventLoopRunningError: called inside a running event loop.
        """
        self._messages_for(messages, sender)  # refuse before starting a loop
        return run_sync(
            lambda: self.a_generate_reply(messages, sender, exclude, **kwargs),
            "generate_reply",
            "a_generate_reply",
        )

    # -- the built-in reply functions as AutoGen names them: (messages, sender, config)

    async def _run_builtin(
        self,
        internal: str,
        messages: list[Message] | None,
        sender: ConversableAgent | None,
        config: Any,
    ) -> tuple[bool, Any]:
        state = self._detached_state(
            list(messages) if messages is not None else self._messages_for(None, sender), sender
        )
        try:
            result: tuple[bool, Any] = await getattr(self, internal)(
                state, state.messages, sender, config
            )
            return result
        finally:
            await self._settle_detached(state)

    async def a_generate_oai_reply(
        self,
        messages: list[Message] | None = None,
        sender: ConversableAgent | None = None,
        config: Any = None,
    ) -> tuple[bool, str | Message | None]:
        """Ask the model (a `ModelClient` given as `config`, else the agent's) for a reply."""
        return await self._run_builtin("_model_reply", messages, sender, config)

    def generate_oai_reply(
        self,
        messages: list[Message] | None = None,
        sender: ConversableAgent | None = None,
        config: Any = None,
    ) -> tuple[bool, str | Message | None]:
        """Blocking `a_generate_oai_reply`."""
        return run_sync(
            lambda: self.a_generate_oai_reply(messages, sender, config),
            "generate_oai_reply",
            "a_generate_oai_reply",
        )

    async def a_generate_code_execution_reply(
        self,
        messages: list[Message] | None = None,
        sender: ConversableAgent | None = None,
        config: Mapping[str, Any] | Literal[False] | None = None,
    ) -> tuple[bool, str | None]:
        """Run the code blocks of the last messages (`config`: a code_execution_config to use
        instead of the agent's, or False for none)."""
        return await self._run_builtin("_code_execution_reply", messages, sender, config)

    def generate_code_execution_reply(
        self,
        messages: list[Message] | None = None,
        sender: ConversableAgent | None = None,
        config: Mapping[str, Any] | Literal[False] | None = None,
    ) -> tuple[bool, str | None]:
        """Blocking `a_generate_code_execution_reply`."""
        return run_sync(
            lambda: self.a_generate_code_execution_reply(messages, sender, config),
            "generate_code_execution_reply",
            "a_generate_code_execution_reply",
        )

    async def a_generate_tool_calls_reply(
        self,
        messages: list[Message] | None = None,
        sender: ConversableAgent | None = None,
        config: Any = None,
    ) -> tuple[bool, Message | None]:
        """Run the tool calls (or legacy function call) of the last message."""
        return await self._run_builtin("_tool_calls_only_reply", messages, sender, config)

    def generate_tool_calls_reply(
        self,
        messages: list[Message] | None = None,
        sender: ConversableAgent | None = None,
        config: Any = None,
    ) -> tuple[bool, Message | None]:
        """Blocking `a_generate_tool_calls_reply`."""
        return run_sync(
            lambda: self.a_generate_tool_calls_reply(messages, sender, config),
            "generate_tool_calls_reply",
            "a_generate_tool_calls_reply",
        )

    async def a_generate_function_call_reply(
        self,
        messages: list[Message] | None = None,
        sender: ConversableAgent | None = None,
        config: Any = None,
    ) -> tuple[bool, Message | None]:
        """Run the legacy `function_call` of the last message; the answer has role "function"."""
        return await self._run_builtin("_function_call_reply", messages, sender, config)

    def generate_function_call_reply(
        self,
        messages: list[Message] | None = None,
        sender: ConversableAgent | None = None,
        config: Any = None,
    ) -> tuple[bool, Message | None]:
        """Blocking `a_generate_function_call_reply`."""
        return run_sync(
            lambda: self.a_generate_function_call_reply(messages, sender, config),
            "generate_function_call_reply",
            "a_generate_function_call_reply",
        )

    async def a_check_termination_and_human_reply(
        self,
        messages: list[Message] | None = None,
        sender: ConversableAgent | None = None,
        config: Any = None,
    ) -> tuple[bool, str | Message | None]:
        """Stop on a termination message or at the auto-reply limit, or ask the human."""
        return await self._run_builtin(
            "_check_termination_and_human_reply", messages, sender, config
        )

    def check_termination_and_human_reply(
        self,
        messages: list[Message] | None = None,
        sender: ConversableAgent | None = None,
        config: Any = None,
    ) -> tuple[bool, str | Message | None]:
        """Blocking `a_check_termination_and_human_reply`."""
        return run_sync(
            lambda: self.a_check_termination_and_human_reply(messages, sender, config),
            "check_termination_and_human_reply",
            "a_check_termination_and_human_reply",
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
            answer = await self._human_answer(
                f"Replying as {self.name}. Give feedback to {peer}. Press enter to skip and use"
                " the auto-reply, or type 'exit' to end the conversation: ",
                state,
            )
            if not answer and terminating:
                answer = "exit"
        elif state.consecutive_auto_reply >= self._max_for(sender) or terminating:
            if self.human_input_mode == "NEVER":
                answer = "exit"
            else:
                answer = await self._human_answer(
                    f"Replying as {self.name}. Give feedback to {peer}. Press enter or type"
                    " 'exit' to stop the conversation: ",
                    state,
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
        """The chain's built-in for calls: a legacy function call, else tool calls."""
        done = await self._function_call_reply(state, messages, sender, config)
        if done[0]:
            return done
        return await self._tool_calls_only_reply(state, messages, sender, config)

    async def _function_call_reply(
        self,
        state: ChatState,
        messages: list[Message],
        sender: ConversableAgent | None,
        config: Any,
    ) -> tuple[bool, Message | None]:
        message = messages[-1] if messages else {}
        call = message.get("function_call")
        if not call:  # a call the agent made itself runs too, as in AutoGen
            return False, None
        _, answer = await self.a_execute_function(call)
        return True, answer

    async def _tool_calls_only_reply(
        self,
        state: ChatState,
        messages: list[Message],
        sender: ConversableAgent | None,
        config: Any,
    ) -> tuple[bool, Message | None]:
        message = messages[-1] if messages else {}
        calls = message.get("tool_calls")
        if not calls:
            return False, None
        # -- approval (see `approvals`): a denied call runs nothing and tells the model why
        decision = await decide(
            self.approve_tools,
            ApprovalRequest(
                kind="tools", agent=self.name, content=tool_calls_text(calls), chat_id=state.chat_id
            ),
            self.input_provider.get_approval,
        )
        if decision.approved:
            results = await run_tool_calls(self._tool_named, calls)
        else:
            results = [denied_tool(decision)] * len(calls)
        # -- end approval
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
        if config is False:
            return False, None
        if config is not None:
            return await self._run_code_with(
                CodeExecution.from_config(config), messages, state.peer
            )
        code = self._code
        if code is None:
            return False, None
        peer = state.peer
        text = code_to_run(
            messages, code.last_n_messages, lambda m: may_run(m, code.execute_from, peer)
        )
        if text is None:
            return False, None
        # -- approval (see `approvals`): denied code runs nothing and tells the model why
        decision = await decide(
            self.approve_code,
            ApprovalRequest(kind="code", agent=self.name, content=text, chat_id=state.chat_id),
            self.input_provider.get_approval,
        )
        if not decision.approved:
            return True, denied_code(decision)
        # -- end approval
        return True, await state.run_code(text)

    async def _run_code_with(
        self, code: CodeExecution | None, messages: list[Message], peer: ConversableAgent | None
    ) -> tuple[bool, str | None]:
        """Run the code of `messages` with a code_execution_config given for this call only."""
        if code is None:
            return False, None
        execute_from = code.execute_from
        text = code_to_run(messages, code.last_n_messages, lambda m: may_run(m, execute_from, peer))
        if text is None:
            return False, None
        lease = Lease(code.open_executor)
        async with contextlib.AsyncExitStack() as stack:
            chat = ChatCode(code, lease, shared=code.shared_workspace)
            return True, await chat.run(text, stack)

    async def _model_reply(
        self,
        state: ChatState,
        messages: list[Message],
        sender: ConversableAgent | None,
        config: Any,
    ) -> tuple[bool, str | Message | None]:
        client = state.client if config is None or not isinstance(config, ModelClient) else config
        if client is None:
            client = await state.model_client()
            if client is None:
                return False, None
        request = ModelRequest(
            messages=self._model_messages_for(state, messages),
            tools=self._tool_registry.request,
            stream=self._stream,
            on_token=self._on_token(state.silent),
        )
        output = None
        if self._structured is None:
            response = await client.create(request)
            state.usage.add(response)
            self._usage.add(response)
        else:  # structured output: validated, repaired, typed (see `_structured`)

            def record(answer: ModelResponse) -> None:
                state.usage.add(answer)
                self._usage.add(answer)

            response, output = await self._structured.create(client, request, record)
        if _logging.logging_enabled():  # runtime_logging records the call and its cost
            _logging.log_agent_completion(self, self._model_messages_for(state, messages), response)
        if output is not None and self._structured is not None:
            state.output = output
            return True, self._structured.dump(output)
        if response.tool_calls:
            return True, response.to_message()
        if response.content is None:
            return False, None
        return True, response.content

    def _system_model_message(self) -> dict[str, Any]:
        """The system message as the model reads it: one dict per agent and system message,
        shared by every chat's model view (clients only read what they are given)."""
        entry = self._system_entry
        if entry is None or entry["content"] != self.system_message:
            entry = self._system_entry = {"role": "system", "content": self.system_message}
        return entry

    def _on_token(self, silent: bool) -> TokenCallback | None:
        """Where a streamed answer's tokens go: the token sink, else the console unless silent."""
        if not self._stream:
            return None
        if self.token_sink is not None:
            return self.token_sink
        return None if silent else _show_token

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
            cache = state.model_messages = [self._system_model_message()]
            done = 0
        elif cache[0]["content"] != self.system_message:
            cache[0] = self._system_model_message()
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

    def get_human_input(self, prompt: str) -> str:
        """Blocking `a_get_human_input` (AutoGen code overrides or mocks it to script a human;
        chats then ask the override)."""
        return run_sync(
            lambda: self.a_get_human_input(prompt), "get_human_input", "a_get_human_input"
        )

    async def _human_answer(self, prompt: str, state: ChatState) -> str:
        """A chat's question to the human: through an overridden or mocked `get_human_input`
        (in a worker thread) or `a_get_human_input` when there is one, else the provider."""
        if _replaced(self, "get_human_input"):
            answer = str(await call_blocking(self.get_human_input, prompt))
        elif _replaced(self, "a_get_human_input"):
            answer = str(await self.a_get_human_input(prompt))
        else:
            return await self.a_get_human_input(prompt, chat=state)
        state.human_input.append(answer)
        return answer

    # ------------------------------------------------------------------ tools

    def _execution_tool(self, function: Callable[..., Any] | Tool, name: str | None) -> Tool:
        if isinstance(function, McpTool):
            return function.renamed(name)
        if isinstance(function, Tool):
            return (
                function
                if name is None or name == function.name
                else Tool(name=name, func_or_tool=function)
            )
        return Tool(name=name, description=inspect.getdoc(function) or "", func_or_tool=function)

    def register_for_llm(
        self,
        *,
        name: str | None = None,
        description: str | None = None,
        api_style: ApiStyle = "tool",
    ) -> Callable[[Callable[..., Any] | Tool], Tool]:
        """Decorator: offer the function (or `Tool`) to this agent's model, its schema read from
        the type hints; it returns the `Tool`, so an outer decorator keeps its name and
        description. `api_style="function"` lists it under the legacy `functions` instead.

        Raises:
            ToolRegistrationError: this agent has no model, the function has no description
                (moot requires one: `description=`, a docstring, or an inner decorator's), or
                it is neither a function nor a `Tool`.
        """
        if api_style not in ("tool", "function"):
            raise ToolRegistrationError(
                f"api_style must be 'tool' or 'function'; got {api_style!r}"
            )

        def decorate(function: Callable[..., Any] | Tool) -> Tool:
            if self._model_lease is None:
                raise ToolRegistrationError(
                    f"{self.name} has no llm_config, so no model can call {name or function!r}"
                )
            if not callable(function):
                raise ToolRegistrationError(
                    f"register_for_llm takes a function or a Tool; got {type(function).__name__}"
                )
            text = description
            if not text and not isinstance(function, Tool):
                text = inspect.getdoc(function)
            tool = (
                function.renamed(name, text)
                if isinstance(function, McpTool)
                else Tool(name=name, description=text, func_or_tool=function)
            )
            if not tool.description:
                raise ToolRegistrationError(
                    f"tool {tool.name!r} needs a description (pass description= or a docstring)"
                )
            self._tool_registry.add_tool(tool, api_style)
            return tool

        return decorate

    def register_for_execution(
        self, name: str | None = None
    ) -> Callable[[Callable[..., Any] | Tool], Tool]:
        """Decorator: let this agent run the function (or `Tool`) when a model asks for it; it
        returns the `Tool`."""

        def decorate(function: Callable[..., Any] | Tool) -> Tool:
            tool = self._execution_tool(function, name)
            self._function_map[tool.name] = tool
            return tool

        return decorate

    def register_function(self, function_map: Mapping[str, Callable[..., Any] | None]) -> None:
        """Add functions this agent executes, by name (AutoGen's `function_map` form); a None
        value removes that name."""
        for fname, function in function_map.items():
            if function is None:
                self._function_map.pop(fname, None)
                continue
            if fname in self._function_map:
                warnings.warn(
                    f"the function {fname!r} replaces an earlier one", UserWarning, stacklevel=2
                )
            self._function_map[fname] = self._execution_tool(function, fname)

    def _require_model(self, what: str) -> None:
        if not self._tool_registry.attached:
            raise ToolRegistrationError(f"{self.name} has no llm_config, so it cannot {what}")

    def update_tool_signature(self, tool_sig: Mapping[str, Any] | str, is_remove: bool) -> None:
        """Add or replace a tool schema offered to the model (a `{"type": "function",
        "function": {...}}` dict), or remove one (`is_remove`, by dict or name).

        Raises:
            ToolRegistrationError: no llm_config, or a schema without a name.
        """
        self._require_model("offer tools")
        self._tool_registry.update(tool_sig, is_remove=is_remove, style="tool")

    def update_function_signature(self, func_sig: Mapping[str, Any] | str, is_remove: bool) -> None:
        """Add, replace or remove a legacy function signature (`{"name", "description",
        "parameters"}`); it reaches the model as a tool.

        Raises:
            ToolRegistrationError: no llm_config, or a signature without a name.
        """
        self._require_model("offer functions")
        self._tool_registry.update(func_sig, is_remove=is_remove, style="function")

    def remove_tool_for_llm(self, tool: Tool | str) -> None:
        """Stop offering `tool` (or the tool of that name) to the model.

        Raises:
            ToolRegistrationError: no such tool is offered.
        """
        self._require_model("offer tools")
        self._tool_registry.remove_tool(tool)

    async def a_execute_function(
        self,
        func_call: Mapping[str, Any],
        call_id: str | None = None,
        verbose: bool = False,
    ) -> tuple[bool, Message]:
        """Run a `{"name", "arguments"}` call with this agent's functions; the answer is a
        `function` role message (its content an "Error: ..." text when the call failed)."""
        del verbose
        name = str(func_call.get("name", ""))
        tool = self._tool_named(name)
        if tool is None:
            ok, content = False, f"Error: Function {name!r} not found"
        else:
            ok, content = await tool.run(func_call.get("arguments") or "{}")
        message: Message = {"name": name, "role": "function", "content": content}
        if call_id is not None:
            message["tool_call_id"] = call_id
        return ok, message

    def execute_function(
        self,
        func_call: Mapping[str, Any],
        call_id: str | None = None,
        verbose: bool = False,
    ) -> tuple[bool, Message]:
        """Blocking `a_execute_function`."""
        return run_sync(
            lambda: self.a_execute_function(func_call, call_id, verbose),
            "execute_function",
            "a_execute_function",
        )

    @property
    def function_map(self) -> dict[str, Callable[..., Any]]:
        return {
            tool_name: getattr(tool, "func", tool) for tool_name, tool in self._function_map.items()
        }

    def _tool_named(self, name: str) -> Tool | None:
        """The tool this agent runs under `name`; a bare function someone put in the map is
        made a tool on the way."""
        found: Any = self._function_map.get(name)
        if found is None or isinstance(found, Tool):
            return found
        tool = Tool(name=name, func_or_tool=found)
        self._function_map[name] = tool
        return tool

    @property
    def tools(self) -> list[Tool]:
        """The `Tool`s registered for this agent's model (a copy of the list)."""
        return self._tool_registry.objects

    def can_execute_function(self, name: str | list[str]) -> bool:
        names = [name] if isinstance(name, str) else name
        return all(each in self._function_map for each in names)

    # ------------------------------------------------------------------ hooks

    def register_hook(self, hookable_method: str, hook: Callable[..., Any]) -> None:
        """Call `hook` at one of AutoGen's hookable points (see `moot.agents._hooks`):
        "process_last_received_message", "process_all_messages_before_reply",
        "process_message_before_send" or "update_agent_state".

        Raises:
            AgentConfigError: an unknown point, or the hook is registered there already.
        """
        self._hooks.register(hookable_method, hook)

    @property
    def hook_lists(self) -> dict[str, list[Callable[..., Any]]]:
        """The registered hooks by hookable point."""
        return self._hooks.lists

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
        chat_id: str | None = None,
        store: ChatStore | str | bool | None = "default",
        **context: Any,
    ) -> ChatResult:
        """Chat with `recipient`, starting with `message`, until one side stops replying.

        The chat runs on `runtime`, or on a private runtime for its duration. `max_turns` bounds
        the messages this agent sends. Extra keyword arguments are the chat's context (e.g.
        `carryover`), passed to a callable `message`.

        Each message is journaled (docs/durability.md): by default to $MOOT_JOURNAL_URL or the
        SQLite file under the user's data folder; `store` takes a `ChatStore` or a URL, and
        `store=None` turns the journal off. A `chat_id` found in the journal resumes that chat.

        Raises:
            ModelError: a model call failed for good (after retries and fallbacks).
            DockerUnavailableError: code must run in Docker and no engine answers.
            HumanInputError: the input provider could not answer.
            StoreUnavailableError: the journal cannot be reached (before any model call).
            LeaseHeldError: another process is running this chat.
            JournalError: the journal refused or lost a message; the chat stops, resumable.
        """
        if chat_id is not None and not isinstance(chat_id, str):
            raise AgentConfigError(f"chat_id is a str, not {type(chat_id).__name__}")
        if max_turns is not None and max_turns < 1:
            raise AgentConfigError(f"max_turns must be at least 1; got {max_turns}")
        if not (summary_method in _SUMMARY_METHODS or callable(summary_method)):
            raise AgentConfigError(
                "summary_method must be 'last_msg', 'reflection_with_llm', None or a callable;"
                f" got {summary_method!r}"
            )
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
                chat_id=chat_id,
                store=store,
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
        chat_id: str | None = None,
        store: ChatStore | str | bool | None = "default",
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
                chat_id=chat_id,
                store=store,
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
        """Send `message` to `recipient`, continuing the latest thread with it and both agents'
        auto-reply counters. The recipient replies when `request_reply` is True, or (None) when
        it replies on receipt to this agent (after `initiate_chat`, until
        `stop_reply_at_receive`); the exchange goes on while the other side replies.

        Raises:
            InvalidMessageError: the message has no content, tool call or function call.
        """
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
                request_reply=request_reply,
                exchange=True,
            )

    def send(
        self,
        message: str | Mapping[str, Any],
        recipient: ConversableAgent,
        request_reply: bool | None = None,
        silent: bool = False,
    ) -> None:
        """Blocking `a_send`.

        Raises:
            InvalidMessageError: the message has no content, tool call or function call.
        """
        _check_message(_to_message(message))
        run_sync(lambda: self.a_send(message, recipient, request_reply, silent), "send", "a_send")

    async def a_receive(
        self,
        message: str | Mapping[str, Any],
        sender: ConversableAgent,
        request_reply: bool | None = None,
        silent: bool = False,
        *,
        runtime: Runtime | None = None,
    ) -> None:
        """Take `message` from `sender` (recorded on this side only) and, when `request_reply`
        is True (None: when this agent replies on receipt to `sender`), answer it; the answer
        goes to `sender` as a `send` does.

        Raises:
            InvalidMessageError: the message has no content, tool call or function call.
        """
        async with runtime_scope(runtime) as rt:
            await run_two_agent_chat(
                rt,
                sender,
                self,
                message=message,
                max_turns=None,
                summary_method=None,
                summary_args={},
                clear_history=False,
                silent=silent,
                context={},
                request_reply=request_reply,
                exchange=True,
                initiator_records=False,
            )

    def receive(
        self,
        message: str | Mapping[str, Any],
        sender: ConversableAgent,
        request_reply: bool | None = None,
        silent: bool = False,
    ) -> None:
        """Blocking `a_receive`.

        Raises:
            InvalidMessageError: the message has no content, tool call or function call.
        """
        _check_message(_to_message(message))
        run_sync(
            lambda: self.a_receive(message, sender, request_reply, silent), "receive", "a_receive"
        )

    def stop_reply_at_receive(self, sender: ConversableAgent | None = None) -> None:
        """Stop replying on receipt to `sender` (or to everyone) until the next chat with it."""
        if sender is None:
            self.reply_at_receive.clear()
        else:
            self.reply_at_receive[sender] = False

    def reset_consecutive_auto_reply_counter(self, sender: ConversableAgent | None = None) -> None:
        """Start the auto-reply count for `sender` (or for everyone) from 0."""
        if sender is None:
            self._consecutive_auto_reply_counter.clear()
        else:
            self._consecutive_auto_reply_counter[sender] = 0
        for state in self._chats.values():
            if sender is None or state.peer is sender:
                state.consecutive_auto_reply = 0

    async def a_generate_init_message(
        self, message: str | Mapping[str, Any] | None, **kwargs: Any
    ) -> str | Message:
        """The first message of a chat: `message` (None: ask the human) with the `carryover`
        keyword appended as a "Context:" section.

        Raises:
            CarryoverTypeError: the carryover is neither a str nor a list.
        """
        if message is None:
            message = await self.a_get_human_input(">")
        return with_carryover(message, kwargs.get("carryover"))

    def generate_init_message(
        self, message: str | Mapping[str, Any] | None, **kwargs: Any
    ) -> str | Message:
        """`a_generate_init_message` for plain scripts.

        Raises:
            CarryoverTypeError: the carryover is neither a str nor a list.
        """
        if message is not None:
            return with_carryover(message, kwargs.get("carryover"))
        return run_sync(
            lambda: self.a_generate_init_message(message, **kwargs),
            "generate_init_message",
            "a_generate_init_message",
        )

    def chat_messages_for_summary(self, agent: ConversableAgent) -> list[Message]:
        """The messages a summary of the chat with `agent` reads (the whole thread)."""
        return self._conversations.get(agent, [])


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
