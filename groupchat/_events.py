"""The event stream of one group chat: what happened, in order, for consoles and web UIs.

A chat emits events only while someone listens (`GroupChatManager.run_stream`), so a chat that
nobody watches pays nothing for them. The stream is bounded: a slow reader slows its own chat,
never the others, and never loses an event.
"""

from __future__ import annotations

from collections.abc import Mapping  # noqa: TC003 (the codec reads the events' annotations)
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import anyio

from moot.models import Usage  # noqa: TC001 (as above)

from ._state import StopReason  # noqa: TC001 (as above)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

    from ._manager import GroupChatResult  # given to the codec by `_distributed` (a cycle)


@dataclass(frozen=True, slots=True, kw_only=True)
class ChatEvent:
    """Base of every event: which chat, and the turn it belongs to (0 is the opening message)."""

    chat_id: str
    turn: int


@dataclass(frozen=True, slots=True, kw_only=True)
class MessageEvent(ChatEvent):
    """A message joined the chat's history (and so reached every participant)."""

    speaker: str
    message: Mapping[str, Any]

    @property
    def content(self) -> str:
        """The message's text ("" when it has none, e.g. a bare tool call)."""
        content = self.message.get("content")
        return "" if content is None else str(content)


@dataclass(frozen=True, slots=True, kw_only=True)
class SpeakerSelectedEvent(ChatEvent):
    """A policy picked the next speaker; `policy` names the policy that decided."""

    speaker: str
    policy: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ToolCallEvent(ChatEvent):
    """A speaker asked for tool calls (names and JSON arguments as the model wrote them)."""

    speaker: str
    calls: tuple[Mapping[str, Any], ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class CodeRunEvent(ChatEvent):
    """A speaker ran code and reported its exit code and output."""

    speaker: str
    exit_code: int | None
    output: str


@dataclass(frozen=True, slots=True, kw_only=True)
class TokenUsageEvent(ChatEvent):
    """A model call inside the chat; `source` is a participant or "selector"."""

    source: str
    usage: Usage
    cost: float


@dataclass(frozen=True, slots=True, kw_only=True)
class TerminationEvent(ChatEvent):
    """The chat ended; always the last event. `result` is the finished chat."""

    reason: StopReason
    result: GroupChatResult | None = None


@dataclass(slots=True)
class EventSink:
    """The writing end a chat holds while someone listens; `emit` waits when the reader lags."""

    send: MemoryObjectSendStream[ChatEvent]
    closed: bool = field(default=False)

    async def emit(self, event: ChatEvent) -> None:
        """Hand `event` to the reader; dropped only if the reader has gone away."""
        if self.closed:
            return
        try:
            await self.send.send(event)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            self.closed = True  # the reader stopped listening; the chat goes on

    async def aclose(self) -> None:
        self.closed = True
        await self.send.aclose()


def event_channel(buffer: int = 64) -> tuple[EventSink, MemoryObjectReceiveStream[ChatEvent]]:
    """A bounded channel: the sink a chat writes to and the stream its reader iterates."""
    send, receive = anyio.create_memory_object_stream[ChatEvent](buffer)
    return EventSink(send), receive


async def iterate(receive: MemoryObjectReceiveStream[ChatEvent]) -> AsyncIterator[ChatEvent]:
    """Yield events until the chat closes its end."""
    async with receive:
        async for event in receive:
            yield event
