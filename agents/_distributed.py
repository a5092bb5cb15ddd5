"""Chats whose participants live on worker processes: names every process agrees on, the chat
messages' codec names, and the two-agent driver that reaches its participants by message only.

In one process a driver opens each agent's side of a chat on the agent object it holds. Across
processes that object is a stand-in: the participant runs on the worker that owns its key, with
the worker's own agent object (built by the worker's setup, with its own model client and
executor). So there the driver opens each side with `OpenChat` and reads it back with
`ReportChat`; the rest is the ordinary participant protocol (`Say`, `Turn`, `Summarize`, ...).

A runtime is distributed for an agent when `host_agents` put the agent on it (a worker), or when
its transport says another process hosts the agent's type (a client).
"""

from __future__ import annotations

import hashlib
import re
import weakref
from typing import TYPE_CHECKING, Any

import structlog

from moot.models import ModelUsage, UsageSummary
from moot.runtime import DeadlineExceededError, DeliveryError

from ._durable import _view
from ._errors import AgentConfigError, HumanInputError
from ._human_input import ConsoleInputProvider, InputProvider
from ._participant import (
    ChatReport,
    CloseChat,
    OpenChat,
    ReportChat,
    Say,
    Summarize,
    Turn,
    TurnReply,
)

if TYPE_CHECKING:
    from moot.runtime import Runtime

    from ._chat import ChatResult
    from ._conversable import ConversableAgent
    from ._durable import TwoAgentJournal
    from ._human_input import InputRequest
    from ._participant import Message

log = structlog.get_logger("moot.agents.distributed")

_UNSAFE = re.compile(r"[^A-Za-z0-9_\-]")

CHAT_MESSAGES: tuple[type, ...] = (
    Say,
    Turn,
    TurnReply,
    Summarize,
    CloseChat,
    OpenChat,
    ReportChat,
    ChatReport,
)
"""The participant protocol's messages and replies; each is registered as `moot.agents.<Name>`."""


def usage_to_wire(summary: UsageSummary) -> dict[str, dict[str, dict[str, float]]]:
    """`summary` as plain JSON: per part ("including_cached", "actual"), per model, the counts."""
    return {
        part: {
            model: {
                "calls": usage.calls,
                "prompt_tokens": usage.prompt_tokens,
                "completion_tokens": usage.completion_tokens,
                "total_tokens": usage.total_tokens,
                "cost": usage.cost,
            }
            for model, usage in getattr(summary, part).items()
        }
        for part in ("including_cached", "actual")
    }


def usage_from_wire(data: dict[str, dict[str, dict[str, float]]]) -> UsageSummary:
    """The `UsageSummary` that `usage_to_wire` wrote."""

    def part(name: str) -> dict[str, ModelUsage]:
        return {
            model: ModelUsage(
                calls=int(counts.get("calls", 0)),
                prompt_tokens=int(counts.get("prompt_tokens", 0)),
                completion_tokens=int(counts.get("completion_tokens", 0)),
                total_tokens=int(counts.get("total_tokens", 0)),
                cost=float(counts.get("cost", 0.0)),
            )
            for model, counts in data.get(name, {}).items()
        }

    return UsageSummary(including_cached=part("including_cached"), actual=part("actual"))


def register_chat_messages(runtime: Runtime) -> None:
    """Register the participant protocol's messages with `runtime.codec` under stable names
    (`moot.agents.Say`, ...), so they cross a serializing transport. Safe to call again.

    Raises:
        SerializationError: a name is taken by another type in this codec.
    """
    for message_type in CHAT_MESSAGES:
        runtime.codec.register(message_type, name=f"moot.agents.{message_type.__name__}")


def shared_type(name: str) -> str:
    """The actor type of agent `name` on a distributed runtime: the same in every process.

    A name that is not made of `[A-Za-z0-9_-]` keeps a readable part and gains a short hash of
    the whole name, so two names never share a type.
    """
    safe = _UNSAFE.sub("_", name)[:48]
    if safe == name:
        return f"moot.agent.{safe}"
    digest = hashlib.blake2b(name.encode(), digest_size=5).hexdigest()
    return f"moot.agent.{safe}.{digest}"


class _Placement:
    """What a runtime knows of its distributed agents: those it hosts, those others host."""

    __slots__ = ("hosted", "remote")

    def __init__(self) -> None:
        self.hosted: dict[str, ConversableAgent] = {}
        self.remote: set[str] = set()


_PLACEMENTS: weakref.WeakKeyDictionary[Runtime, _Placement] = weakref.WeakKeyDictionary()


def host_agents(runtime: Runtime, *agents: ConversableAgent) -> None:
    """Host `agents` on `runtime` under names every process agrees on (a worker's `setup`).

    Call it before the runtime starts, with every agent a chat on this worker may name (both
    sides of a two-agent chat; a group chat's manager and its members): a participant finds its
    peer here by name. The chat messages are registered with the runtime's codec.

    Raises:
        AgentConfigError: two different agents with one name, or a name hosted twice.
        RegistrationError: the agent's type is already registered on `runtime`.
    """
    placement = _PLACEMENTS.get(runtime)
    if placement is None:
        placement = _PLACEMENTS[runtime] = _Placement()
    register_chat_messages(runtime)
    for agent in agents:  # first: a manager's registration wraps its members' providers
        if isinstance(agent.input_provider, ConsoleInputProvider):
            agent.input_provider = NoConsoleInput()
    for agent in agents:
        known = placement.hosted.get(agent.name)
        if known is agent:
            continue
        if known is not None:
            raise AgentConfigError(
                f"two agents are named {agent.name!r} on one runtime; agents that run on workers"
                " need unique names"
            )
        placement.hosted[agent.name] = agent
        agent._register_messages(runtime)
        runtime.register(shared_type(agent.name), agent._participant_factory, idle_timeout=300.0)


class NoConsoleInput(InputProvider):
    """A worker's stand-in for the console: nobody types at a worker, so a question waits in
    the chat's journal for an answer from any process (`moot chats answer`), then the chat is
    resumed; a chat with no journal fails with `HumanInputError`."""

    async def get_input(self, request: InputRequest) -> str:
        raise HumanInputError(
            f"{request.agent} runs on a worker, which has no console to ask a human; journal"
            " the chat (store=...) to have the question wait for an answer from any process"
        )


def attach_distributed(runtime: Runtime, agent: ConversableAgent) -> bool:
    """True when `agent` runs distributed on `runtime`: hosted here by `host_agents`, or hosted
    by another process (then the codec learns the chat messages, to read the replies)."""
    placement = _PLACEMENTS.get(runtime)
    if placement is not None and (
        placement.hosted.get(agent.name) is agent or agent.name in placement.remote
    ):
        return True
    if not runtime.transport.hosts_elsewhere(shared_type(agent.name)):
        return False
    if placement is None:
        placement = _PLACEMENTS[runtime] = _Placement()
    register_chat_messages(runtime)
    agent._register_messages(runtime)
    placement.remote.add(agent.name)
    return True


def is_distributed(runtime: Runtime, agent: ConversableAgent) -> bool:
    """Whether `agent`'s participants on `runtime` use the shared names (see `attach_distributed`;
    call that first)."""
    placement = _PLACEMENTS.get(runtime)
    return placement is not None and (
        placement.hosted.get(agent.name) is agent or agent.name in placement.remote
    )


def on_workers(runtime: Runtime, first: ConversableAgent, second: ConversableAgent) -> bool:
    """Whether a chat between `first` and `second` on `runtime` runs on workers (both sides
    distributed) or in this process (neither).

    Raises:
        AgentConfigError: one side is distributed and the other is not.
    """
    one, two = is_distributed(runtime, first), is_distributed(runtime, second)
    if one != two:
        remote, local = (first, second) if one else (second, first)
        raise AgentConfigError(
            f"{remote.name} runs on workers but {local.name} does not; host both agents on the"
            " workers (moot.agents.distributed.host_agents)"
        )
    return one


def hosted_agent(runtime: Runtime, name: str) -> ConversableAgent:
    """The agent named `name` that `runtime` hosts.

    Raises:
        AgentConfigError: the runtime hosts no agent by that name.
    """
    placement = _PLACEMENTS.get(runtime)
    found = placement.hosted.get(name) if placement is not None else None
    if found is None:
        raise AgentConfigError(
            f"this worker hosts no agent named {name!r}; its setup must host every agent its"
            " chats name (moot.agents.distributed.host_agents)"
        )
    return found


async def run_remote_two_agent_chat(
    runtime: Runtime,
    initiator: ConversableAgent,
    recipient: ConversableAgent,
    *,
    chat_id: str,
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
    journal: TwoAgentJournal | None = None,
) -> ChatResult:
    """`run_two_agent_chat` for agents on workers: each side is opened, asked and read back by
    message; the stand-ins here end with the chat's thread as their `chat_messages`.

    With a `journal`, each message is journaled here (the driver) before the other side is
    asked, a journaled chat resumes by id, and a turn whose worker is lost (the request fails
    with `DeliveryError` or `DeadlineExceededError`) is redone once: both sides are opened again
    from the journal, where the participants' keys now live.
    """
    from ._chat import ChatResult, ask, close_participants

    if callable(summary_method):
        raise AgentConfigError(
            "a callable summary_method cannot reach agents on workers; use 'last_msg' or"
            " 'reflection_with_llm'"
        )
    alone = initiator is recipient
    if not exchange:
        initiator.reply_at_receive[recipient] = recipient.reply_at_receive[initiator] = True
    a = initiator.participant_id(runtime, chat_id)
    b = recipient.participant_id(runtime, chat_id)
    agents = {a: initiator, b: recipient}
    sides = [a] if alone else [a, b]
    opened: list[Any] = []

    async def open_sides(history: tuple[Message, ...]) -> None:
        """Open both sides; from a journaled `history`, the side to reply gets all but the last
        message (its `Turn` brings it) and the other side all of them."""
        by_initiator = len(history) % 2 == 1
        for me, owner, peer in ((a, initiator, recipient), (b, recipient, initiator))[: len(sides)]:
            seen = history if (me == a) == by_initiator else history[:-1]
            request = OpenChat(
                peer=peer.name,
                clear_history=clear_history,
                silent=silent,
                keep_counter=exchange,
                history=tuple(_view(seen, owner.name)),
            )
            await ask(runtime, request, me, sender=None)
            if me not in opened:
                opened.append(me)

    transcript: list[Message] = []  # what the journal holds, in order (reopens start from it)

    async def record(owner: ConversableAgent, message: Message) -> None:
        if owner._hooks.before_send:  # a stand-in's send hooks observe what its agent sent
            peer = recipient if owner is initiator else initiator
            owner._hooks.process_before_send(owner, message, peer, silent)
        if journal is not None:
            named = _named(message, owner.name)
            await journal.record(owner.name, named)
            transcript.append(named)

    try:
        sent: Message
        if journal is not None and journal.history:  # resume: no model asked for these
            history = tuple(journal.history)
            transcript.extend(dict(message) for message in history)
            await open_sides(history)
            sent = dict(history[-1])
            speaker, listener = (a, b) if len(history) % 2 == 1 else (b, a)
            turns = (len(history) + 1) // 2
            replying = agents[listener].reply_at_receive[agents[speaker]]
        else:
            await open_sides(())
            say = Say(message=message, context=context, record=initiator_records)
            sent = await ask(runtime, say, a, sender=None)
            await record(initiator, sent)
            turns = 1
            speaker, listener = a, b
            if request_reply is None:
                request_reply = recipient.reply_at_receive[initiator]
            replying = request_reply
        while True:
            last_turn = not replying or (
                max_turns is not None and listener == a and turns >= max_turns
            )
            turn = Turn(sender=agents[speaker].name, message=sent, request_reply=not last_turn)
            try:
                reply: TurnReply = await ask(runtime, turn, listener, sender=speaker)
            except (DeliveryError, DeadlineExceededError) as exc:
                if journal is None:
                    raise
                log.warning("chat.turn_lost", chat=chat_id, error=repr(exc))
                await open_sides(tuple(transcript))  # where the keys live now
                reply = await ask(runtime, turn, listener, sender=speaker)
            if reply.message is None or last_turn:
                break
            sent = reply.message
            await record(agents[listener], sent)  # durable before the other side is asked
            speaker, listener = listener, speaker
            if speaker == a:
                turns += 1
            replying = agents[listener].reply_at_receive[agents[speaker]]
        summary = ""
        if not exchange:
            request_summary = Summarize(method=summary_method, args=summary_args)
            summary = await ask(runtime, request_summary, a, sender=None)
        first: ChatReport = await ask(runtime, ReportChat(), a, sender=None)
        second = first if alone else await ask(runtime, ReportChat(), b, sender=None)
        initiator._conversations[recipient] = list(first.messages)
        if not alone:
            recipient._conversations[initiator] = list(second.messages)
        return ChatResult(
            chat_id=chat_id,
            chat_history=list(first.messages),
            summary=summary,
            cost=usage_from_wire(first.usage)
            + (UsageSummary() if alone else usage_from_wire(second.usage)),
            human_input=list(first.human_input) + ([] if alone else list(second.human_input)),
        )
    finally:
        await close_participants(runtime, opened)


def _named(message: Message, name: str) -> Message:
    return message if "name" in message else {**message, "name": name}
