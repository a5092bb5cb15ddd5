"""The envelope: one message plus its routing, identity and deadline, as the runtime moves it."""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import asyncio

    from ._ids import AgentId, TopicId


class Kind(enum.Enum):
    """How a message travels, which decides who hears about its outcome."""

    SEND = "send"  # request/response: the caller awaits the handler's result or a typed error
    TELL = "tell"  # fire-and-forget to one agent: failures become dead letters
    PUBLISH = "publish"  # fire-and-forget to a topic's subscribers: failures become dead letters


@dataclass(frozen=True, slots=True, kw_only=True)
class Envelope:
    """A message in transit. Handlers receive it as their context (`ctx.sender`, `ctx.deadline`).

    `reply` is the caller's future for a SEND and never crosses a wire; everything else is plain
    data that a transport can serialize.
    """

    message: Any
    kind: Kind
    message_id: str
    correlation_id: str
    recipient: AgentId | None = None
    topic: TopicId | None = None
    sender: AgentId | None = None
    deadline: float | None = None
    reply: asyncio.Future[Any] | None = field(default=None, compare=False, repr=False)
    fail_fast: bool = field(default=False, compare=False, repr=False)
    parent: Envelope | None = field(default=None, compare=False, repr=False)
    """For a SEND made in its sender's turn: that turn's envelope. The sender waits on this
    send, and the parent's sender on the parent if it is a SEND, and so on: the chain shows a
    send cycle. It stays in this process."""
    trace: str | None = field(default=None, compare=False, repr=False)
    """The sender's W3C `traceparent` when a tracing SDK is on (moot.observability): the handler
    runs under it, here or in another process, so one chat is one trace."""

    @property
    def is_request(self) -> bool:
        """True when a caller awaits this message's result."""
        return self.kind is Kind.SEND


Handler = Callable[[Envelope], Awaitable[Any]]
"""The one call shape every stage shares: take an envelope, return the reply (or None)."""
