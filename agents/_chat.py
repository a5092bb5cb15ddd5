"""Chats: `ChatResult`, the per-chat state, and the driver that runs a two-agent chat.

The driver is a mediator: it sends a `Turn` to one participant actor, takes the reply the actor
returns and sends it on to the other one, until a participant answers None or `max_turns` is
reached. A group chat manager drives its participants with the same messages.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import uuid
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import structlog

from moot import observability
from moot.models import UsageSummary, UsageTracker
from moot.runtime import HandlerError, Runtime

from ._distributed import on_workers, run_remote_two_agent_chat
from ._durable import resume_states, two_agent_journal
from ._errors import AgentConfigError, EventLoopRunningError
from ._participant import CloseChat, Message, Say, Summarize, Turn, TurnReply
from ._streams import IOStream

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Coroutine, Generator

    from moot.models import ModelClient
    from moot.runtime import AgentId

    from ._code_execution import ChatCode
    from ._conversable import ConversableAgent
    from ._durable import StoreOption, TwoAgentJournal
    from ._resources import Lease

log = structlog.get_logger("moot.agents.chat")

T = TypeVar("T")
R = TypeVar("R")

CLOSE_TIMEOUT = 60.0  # seconds a participant gets to release its chat's executor and client


@dataclass(frozen=True, slots=True, kw_only=True)
class ChatResult:
    """What a finished chat hands back.

    `chat_history` is the initiator's view of the messages; `cost` sums every model call that
    either agent made in this chat; `human_input` lists what humans typed, in order. `output` is
    the typed final answer of an agent with a `response_format` (the recipient's first), or None.
    """

    chat_id: str
    chat_history: list[Message]
    summary: str
    cost: UsageSummary
    human_input: list[str]
    output: Any = None


@dataclass(slots=True, kw_only=True)
class RunResponse:
    """A finished `run()` (AG2's): `messages`, `summary`, `cost`, `last_speaker`, `uuid`.

    AG2 streams a run's events while it goes on; here the chat has finished when `run` returns,
    and `process()` shows it afterwards.
    """

    messages: list[Message] = field(default_factory=list)
    summary: str = ""
    cost: UsageSummary = field(default_factory=UsageSummary)
    last_speaker: str | None = None
    chat_id: str = ""
    context_variables: dict[str, Any] = field(default_factory=dict)
    uuid: uuid.UUID = field(default_factory=uuid.uuid4)

    @property
    def events(self) -> list[Message]:
        """The messages, in order."""
        return list(self.messages)

    def process(self, processor: Any = None) -> None:
        """Show each message on the default `IOStream`; a `processor` with a
        `process(response)` method (AG2's event processors) or a callable per message instead.
        """
        if processor is not None and hasattr(processor, "process"):
            processor.process(self)
            return
        for message in self.messages:
            if processor is not None:
                processor(message)
            else:
                print_message(str(message.get("name", "")), "", message)


class _Ready(Generic[T]):
    """An awaitable that is already done (an async run response's values are known)."""

    __slots__ = ("value",)

    def __init__(self, value: T) -> None:
        self.value = value

    def __await__(self) -> Generator[Any, None, T]:
        return self.value
        yield  # makes this a generator, as `__await__` must be


class AsyncRunResponse:
    """A finished `a_run()`: as `RunResponse`, with AG2's awaitable fields (`await
    response.summary`) and `await response.process()`."""

    __slots__ = ("result",)

    def __init__(self, result: RunResponse) -> None:
        self.result = result

    @property
    def uuid(self) -> uuid.UUID:
        return self.result.uuid

    @property
    def messages(self) -> _Ready[list[Message]]:
        return _Ready(self.result.messages)

    @property
    def summary(self) -> _Ready[str]:
        return _Ready(self.result.summary)

    @property
    def cost(self) -> _Ready[UsageSummary]:
        return _Ready(self.result.cost)

    @property
    def last_speaker(self) -> _Ready[str | None]:
        return _Ready(self.result.last_speaker)

    @property
    def context_variables(self) -> _Ready[dict[str, Any]]:
        return _Ready(self.result.context_variables)

    async def process(self, processor: Any = None) -> None:
        """Show the run on the default `IOStream` (see `RunResponse.process`)."""
        if processor is not None and hasattr(processor, "process"):
            made = processor.process(self)
            if asyncio.iscoroutine(made):
                await made
            return
        self.result.process(processor)


def new_chat_id() -> str:
    """A fresh chat id, usable as an `AgentId` key."""
    return uuid.uuid4().hex


class ChatState:
    """One agent's side of one chat: its message thread, counters, usage and chat resources.

    Only the agent's participant actor for the chat changes it, one message at a time. What the
    chat holds (its code execution's workspace and leases) is on `stack`, which `aclose` unwinds
    (see `_resources`) before it releases the model client lease, held on its own.
    """

    __slots__ = (
        "_client",
        "_human_input",
        "_model",
        "_model_held",
        "_stack",
        "chat_id",
        "code",
        "consecutive_auto_reply",
        "messages",
        "model_messages",
        "model_messages_done",
        "model_messages_last",
        "output",
        "own_last",
        "own_upto",
        "owner",
        "peer",
        "silent",
        "usage",
    )

    def __init__(
        self,
        *,
        chat_id: str,
        owner: ConversableAgent,
        peer: ConversableAgent | None,
        messages: list[Message] | None = None,
        silent: bool = False,
        model: Lease[ModelClient] | None = None,
        code: ChatCode | None = None,
    ) -> None:
        self.chat_id = chat_id
        self.owner = owner
        self.peer = peer
        self.messages: list[Message] = messages if messages is not None else []
        self.silent = silent
        self.consecutive_auto_reply = 0
        self._human_input: list[str] | None = None
        self.usage = UsageTracker()
        # The model's view of `messages`, extended as the thread grows (see `ConversableAgent`):
        # the converted list, how many messages it covers, and the last of them.
        self.model_messages: list[dict[str, Any]] | None = None
        self.model_messages_done = 0
        self.model_messages_last: Message | None = None
        # How much of `messages` is this agent's own copies (see `own_thread`), and its last.
        self.own_upto = 0
        self.own_last: Message | None = None
        self._stack: AsyncExitStack | None = None
        self._model = model
        self._model_held = False  # holds `_model` (released by `aclose`, after `stack`)
        self._client: ModelClient | None = None
        self.code = code
        self.output: Any = None  # the last answer validated against a `response_format`

    @property
    def human_input(self) -> list[str]:
        """What humans typed in this chat, in order (the list is made on first use)."""
        if self._human_input is None:
            self._human_input = []
        return self._human_input

    def own_thread(self) -> list[Message]:
        """`messages`, each entry this agent's own dict: called before user code (a reply
        function, a hook) gets the list, since a group chat's broadcast shares one dict between
        the group's history and every participant. Only entries added since the last call are
        copied; a thread cut or replaced since then is copied afresh."""
        messages = self.messages
        start = self.own_upto
        if start > len(messages) or (start and messages[start - 1] is not self.own_last):
            start = 0
        end = len(messages)
        for index in range(start, end):
            messages[index] = dict(messages[index])
        self.own_upto = end
        self.own_last = messages[end - 1] if end else None
        return messages

    @property
    def stack(self) -> AsyncExitStack:
        """What `aclose` undoes (made on first use: most chats only hold a model client)."""
        if self._stack is None:
            self._stack = AsyncExitStack()
        return self._stack

    @property
    def client(self) -> ModelClient | None:
        """The model client this chat holds already, if any (see `model_client`)."""
        return self._client

    async def model_client(self) -> ModelClient | None:
        """The agent's model client, held for this chat; None when the agent has no model."""
        if self._client is None and self._model is not None:
            # Held directly, not through `stack`: most chats hold nothing else, and an exit
            # stack per chat side costs about a kilobyte and a closure.
            self._client = await self._model.acquire()
            self._model_held = True
        return self._client

    async def run_code(self, text: str) -> str:
        """Run the code blocks of `text` in this chat's workspace; the reply in AutoGen's form.

        Raises:
            AgentConfigError: the agent has no code execution.
            DockerUnavailableError: the executor needs Docker and no engine answers.
        """
        if self.code is None:
            raise AgentConfigError(f"{self.owner.name} has no code execution configured")
        return await self.code.run(text, self.stack)

    async def aclose(self) -> None:
        """Release what the chat holds: its sandbox, workspace, executor and model client."""
        self._client = None
        stack, self._stack = self._stack, None
        held, self._model_held = self._model_held, False
        if self.code is not None:
            self.code.closed()
        try:
            if stack is not None:
                await stack.aclose()
        finally:
            if held and self._model is not None:
                await self._model.release()


@contextlib.asynccontextmanager
async def runtime_scope(runtime: Runtime | None) -> AsyncIterator[Runtime]:
    """The caller's runtime, or a private one that lives for the duration of the block."""
    if runtime is not None:
        yield runtime
        return
    async with Runtime() as private:
        yield private


def _unwrap(exc: HandlerError) -> BaseException:
    cause = exc.__cause__
    return cause if cause is not None else exc


async def ask(runtime: Runtime, message: Any, to: AgentId, *, sender: AgentId | None) -> Any:
    """`runtime.send`, re-raising a handler's own exception (a `ModelError`, ...) unwrapped."""
    try:
        return await runtime.send(message, to, sender=sender)
    except HandlerError as exc:
        raise _unwrap(exc) from None


async def close_participants(runtime: Runtime, participants: list[AgentId]) -> None:
    """Send `CloseChat` to each participant; it queues behind a turn that is being cancelled.

    A failure to close is logged, not raised: the chat's own outcome (result or error) wins.
    """
    for agent_id in participants:
        try:
            await runtime.send(CloseChat(), agent_id, timeout=CLOSE_TIMEOUT)
        except Exception as exc:
            log.warning("chat.close_failed", agent=str(agent_id), error=repr(exc))


async def run_two_agent_chat(
    runtime: Runtime,
    initiator: ConversableAgent,
    recipient: ConversableAgent,
    *,
    message: Any,
    max_turns: int | None,
    summary_method: Any,
    summary_args: dict[str, Any],
    clear_history: bool,
    silent: bool,
    context: dict[str, Any],
    request_reply: bool | None = True,
    exchange: bool = False,
    initiator_records: bool = True,
    chat_id: str | None = None,
    store: StoreOption = None,
) -> ChatResult:
    """Run one chat between two agents on `runtime` and return its result.

    A new chat (`exchange=False`, AutoGen's `initiate_chat`) resets both agents' auto-reply
    counters for each other and has each reply on receipt. An exchange (`send` / `receive`)
    continues the latest thread and counters: the first message is answered when
    `request_reply` says so (None: when the recipient replies on receipt to the initiator), each
    later one when its listener replies on receipt to its speaker; it has no summary. With
    `initiator_records=False` (a `receive`) the first message is recorded by the recipient only.
    With `store` (not for exchanges), each message is journaled before the other side is asked;
    a `chat_id` found in the journal resumes that chat (see `_durable`).
    """
    chat_id = chat_id or new_chat_id()
    with observability.workflow("two_agent_chat", chat_id, initiator.name):
        async with two_agent_journal(
            None if exchange else store,
            chat_id=chat_id,
            initiator=initiator.name,
            recipient=recipient.name,
            max_turns=max_turns,
        ) as journal:
            finished = False
            try:
                result = await _run_two_agent_chat(
                    runtime, initiator, recipient, chat_id, journal, message=message,
                    max_turns=max_turns, summary_method=summary_method, summary_args=summary_args,
                    clear_history=clear_history, silent=silent, context=context,
                    request_reply=request_reply, exchange=exchange,
                    initiator_records=initiator_records,
                )  # fmt: skip
                finished = True
                return result
            finally:
                if journal is not None:
                    await journal.close(finished)


async def _run_two_agent_chat(
    runtime: Runtime,
    initiator: ConversableAgent,
    recipient: ConversableAgent,
    chat_id: str,
    journal: TwoAgentJournal | None,
    *,
    message: Any,
    max_turns: int | None,
    summary_method: Any,
    summary_args: dict[str, Any],
    clear_history: bool,
    silent: bool,
    context: dict[str, Any],
    request_reply: bool | None,
    exchange: bool,
    initiator_records: bool,
) -> ChatResult:
    alone = initiator is recipient
    await initiator.attach(runtime)
    if not alone:
        await recipient.attach(runtime)
    if on_workers(runtime, initiator, recipient):  # participants live on workers
        return await run_remote_two_agent_chat(
            runtime, initiator, recipient, chat_id=chat_id, message=message,
            max_turns=max_turns, summary_method=summary_method, summary_args=summary_args,
            clear_history=clear_history, silent=silent, context=context,
            request_reply=request_reply, exchange=exchange, initiator_records=initiator_records,
            journal=journal,
        )  # fmt: skip
    if not exchange:
        initiator.reply_at_receive[recipient] = recipient.reply_at_receive[initiator] = True
    first = initiator.open_chat(
        chat_id, recipient, clear_history=clear_history, silent=silent, keep_counter=exchange
    )
    second = (
        first
        if alone
        else recipient.open_chat(
            chat_id, initiator, clear_history=clear_history, silent=silent, keep_counter=exchange
        )
    )
    a = initiator.participant_id(runtime, chat_id)
    b = recipient.participant_id(runtime, chat_id)
    agents = {a: initiator, b: recipient}
    try:
        sent: Message
        if journal is not None and journal.history:  # resume: no model asked for these
            sent, by_initiator = resume_states(journal, initiator, recipient, first, second)
            await journal.restore_workspaces(*((first,) if alone else (first, second)))
            speaker, listener = (a, b) if by_initiator else (b, a)
            speaker_name = agents[speaker].name
            turns = (len(journal.history) + 1) // 2
            replying = agents[listener].reply_at_receive[agents[speaker]]
        else:
            say = Say(message=message, context=context, record=initiator_records)
            sent = await ask(runtime, say, a, sender=None)
            if journal is not None:
                await journal.record(initiator.name, _named(sent, initiator.name), first)
            turns = 1
            speaker, listener = a, b
            speaker_name = initiator.name
            if request_reply is None:
                request_reply = recipient.reply_at_receive[initiator]
            replying = request_reply
        while True:
            last_turn = not replying or (
                max_turns is not None and listener == a and turns >= max_turns
            )
            reply: TurnReply = await ask(
                runtime,
                Turn(sender=speaker_name, message=sent, request_reply=not last_turn),
                listener,
                sender=speaker,
            )
            if reply.message is None or last_turn:
                break
            sent = reply.message
            if journal is not None:  # durable before the other side is asked to reply
                states = {a: first, b: second}
                name = agents[listener].name
                await journal.record(name, _named(sent, name), states[listener])
            speaker, listener = listener, speaker
            speaker_name = agents[speaker].name
            if speaker == a:
                turns += 1
            replying = agents[listener].reply_at_receive[agents[speaker]]
        summary = ""
        if not exchange:
            summary = await ask(
                runtime, Summarize(method=summary_method, args=summary_args), a, sender=None
            )
        return ChatResult(
            chat_id=chat_id,
            chat_history=list(first.messages),
            summary=summary,
            cost=first.usage.summary() + (UsageSummary() if alone else second.usage.summary()),
            human_input=first.human_input + ([] if alone else second.human_input),
            output=second.output if second.output is not None else first.output,
        )
    finally:
        await close_participants(runtime, [a] if alone else [a, b])


def _named(message: Message, name: str) -> Message:
    return message if "name" in message else {**message, "name": name}


_HOST_LOOP: contextvars.ContextVar[asyncio.AbstractEventLoop | None] = contextvars.ContextVar(
    "moot_agents_host_loop", default=None
)
"""Set while a blocking user override runs in a worker thread (see `call_blocking`): the loop
that awaits it, where the blocking calls it makes run."""


def run_sync(make: Callable[[], Coroutine[Any, Any, R]], name: str, async_name: str) -> R:
    """Run `make()` to completion in a new event loop, for plain (non-async) scripts; inside a
    blocking override run by `call_blocking`, on the loop that awaits that override.

    Raises:
        EventLoopRunningError: called from code that already runs in an event loop.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        host = _HOST_LOOP.get()
        if host is not None and host.is_running():
            return asyncio.run_coroutine_threadsafe(make(), host).result()
        return asyncio.run(make())
    raise EventLoopRunningError(
        f"{name}() blocks until the chat ends, so it cannot run inside a running event loop"
        f" (Jupyter, an async web app, an async def). Use `await {async_name}(...)` instead."
    )


async def call_blocking(function: Callable[..., R], /, *args: Any, **kwargs: Any) -> R:
    """Run a blocking user override (a sync `generate_reply`, say) in a worker thread; the
    blocking agent calls it makes (`super().generate_reply(...)`) run on this loop meanwhile."""
    token = _HOST_LOOP.set(asyncio.get_running_loop())
    try:
        return await asyncio.to_thread(function, *args, **kwargs)
    finally:
        _HOST_LOOP.reset(token)


_RULE = "-" * 80


def print_message(sender: str, recipient: str, message: Message) -> None:
    """Show a delivered message on the default `IOStream`, as AutoGen's console output does."""
    lines = [f"{sender} (to {recipient}):", ""]
    content = message.get("content")
    if message.get("tool_responses"):
        for response in message["tool_responses"]:
            lines.append(f"***** Response from calling tool ({response.get('tool_call_id')}) *****")
            lines.append(str(response.get("content")))
    elif content:
        lines.append(str(content))
    for call in message.get("tool_calls") or ():
        function = call.get("function", {})
        lines.append(
            f"***** Suggested tool call ({call.get('id')}): {function.get('name')} *****\n"
            f"Arguments: {function.get('arguments')}"
        )
    lines += ["", _RULE]
    IOStream.get_default().print("\n".join(lines), flush=True)
