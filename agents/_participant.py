"""The per-chat actor: one `ChatParticipant` per (agent, chat), addressed `AgentId(type, chat_id)`.

Every message between agents travels as one of the messages below, sent through the runtime to
a participant. A chat driver (the two-agent loop in `_chat`, or a group chat manager) mediates:
it sends a `Turn` to one participant and passes the reply it returns on to the next. A participant
never sends to another participant while handling a message, so two participants can never wait
on each other, and cancelling the driver's `send` cancels the turn in progress (the model request,
the running code) through the runtime.

This module has no `from __future__ import annotations`: the runtime reads the handlers' type
hints at registration, so the names in them must exist at run time.
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from moot import observability
from moot.runtime import Agent, AgentContext, Envelope, Runtime, handler

if TYPE_CHECKING:
    from ._chat import ChatState

Message = dict[str, Any]
"""A chat message in AutoGen's dict form: content, role, name, tool_calls, tool_responses, ..."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Say:
    """Ask a participant to send the chat's first message (a str, a dict, a callable or None).

    With `record=False` (AutoGen's `receive`, where the sender never sent it) the participant
    only checks the message and hands it back, without recording it or running send hooks.
    """

    message: Any
    context: Mapping[str, Any] = field(default_factory=dict)
    record: bool = True


@dataclass(frozen=True, slots=True, kw_only=True)
class Turn:
    """Deliver `message` from `sender` (an agent name) and, if `request_reply`, ask for a reply.

    `backlog` holds messages from others that came before `message`, recorded first, each
    under its own "name". A group chat manager catches a speaker up and asks it to reply in one
    `Turn`: the messages it missed as `backlog` and `message`, or `message=None` when it missed
    nothing (reply to the history as it stands).
    """

    sender: str
    message: Message | None
    request_reply: bool = True
    backlog: tuple[Message, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class TurnReply:
    """The participant's answer to a `Turn`: its reply message as recorded, or None (it is done)."""

    message: Message | None


@dataclass(frozen=True, slots=True, kw_only=True)
class Summarize:
    """Ask the chat's initiator for the chat summary ("last_msg", "reflection_with_llm", or a
    callable taking (sender, recipient, summary_args))."""

    method: str | Callable[..., Any] | None
    args: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class CloseChat:
    """The chat is over: release what it holds (see `_resources`). Sent by the driver."""


# -- messages a driver uses when the participant may live in another process ----------------


@dataclass(frozen=True, slots=True, kw_only=True)
class OpenChat:
    """Open this agent's side of the chat where its participant runs (see `_distributed`).

    `peer` names the other side (an agent hosted on the same runtime); `history` seeds the
    thread, in this agent's view (a group chat resumed or joined late).
    """

    peer: str | None
    clear_history: bool = True
    silent: bool = False
    keep_counter: bool = False
    history: tuple[Message, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class ReportChat:
    """Ask a participant what its side of the chat holds: the thread (unless `messages=False`),
    its usage and the human input it took."""

    messages: bool = True


@dataclass(frozen=True, slots=True, kw_only=True)
class ChatReport:
    """A participant's answer to `ReportChat`; `usage` in the form `usage_to_wire` makes."""

    messages: tuple[Message, ...]
    usage: dict[str, dict[str, dict[str, float]]]
    human_input: tuple[str, ...]


class ParticipantOwner(Protocol):
    """What a participant needs from the agent object it acts for (a `ConversableAgent`)."""

    name: str

    def chat_state(self, chat_id: str) -> "ChatState": ...

    async def _handle_say(self, state: "ChatState", say: Say) -> Message: ...

    async def _handle_turn(self, state: "ChatState", turn: Turn) -> TurnReply: ...

    async def _handle_summarize(self, state: "ChatState", request: Summarize) -> str: ...

    async def _handle_close(self, state: "ChatState") -> None: ...

    def _handle_open(self, runtime: Runtime, chat_id: str, request: OpenChat) -> None: ...

    def _handle_report(self, state: "ChatState", request: ReportChat) -> ChatReport: ...


class ChatParticipant(Agent):
    """One agent's part in one chat. It holds no state itself: the chat's `ChatState`, kept by
    the agent object under the chat id, survives passivation and reactivation of this actor."""

    def __init__(self, context: AgentContext, owner: ParticipantOwner) -> None:
        super().__init__(context)
        self.owner = owner

    @property
    def state(self) -> "ChatState":
        return self.owner.chat_state(self.id.key)

    @handler
    async def on_say(self, message: Say, ctx: Envelope) -> Message:
        return await self.owner._handle_say(self.state, message)

    @handler
    async def on_turn(self, message: Turn, ctx: Envelope) -> TurnReply:
        if not observability.SWITCH.active:  # the hot path: one flag when nothing records
            return await self.owner._handle_turn(self.state, message)
        with observability.agent_turn(self.owner.name, self.id.key, str(self.id)):
            return await self.owner._handle_turn(self.state, message)

    @handler
    async def on_summarize(self, message: Summarize, ctx: Envelope) -> str:
        return await self.owner._handle_summarize(self.state, message)

    @handler
    async def on_open(self, message: OpenChat, ctx: Envelope) -> None:
        self.owner._handle_open(self.context.runtime, self.id.key, message)

    @handler
    async def on_report(self, message: ReportChat, ctx: Envelope) -> ChatReport:
        return self.owner._handle_report(self.state, message)

    @handler
    async def on_close(self, message: CloseChat, ctx: Envelope) -> None:
        await self.owner._handle_close(self.state)
        self.context.runtime.retire(self.id)  # the chat is over: free this key's cell
