"""The NATS transport's errors, and how moot errors cross the wire as typed errors.

Its classes hang under `SerializationError` and `DeliveryError`; the whole tree is drawn once,
in `moot.runtime._errors`. A remote failure comes back as the same class the remote runtime
raised (`HandlerError` with the remote exception's repr as its message, `NoHandlerError`, ...).
"""

from __future__ import annotations

from typing import Any

from moot.runtime import (
    AgentId,
    AgentNotFoundError,
    AgentStoppedError,
    DeadlineExceededError,
    DeliveryError,
    HandlerError,
    MailboxFullError,
    MessageDroppedError,
    MootError,
    NoHandlerError,
    RuntimeStoppedError,
    SerializationError,
    UnknownMessageTypeError,
)


class PayloadTooLargeError(SerializationError):
    """An encoded message is larger than the broker accepts; it was refused, never truncated."""

    def __init__(self, message: str, *, size: int, limit: int) -> None:
        super().__init__(message)
        self.size = size
        self.limit = limit


class NoRespondersError(DeliveryError):
    """Nobody listens for the recipient: no live worker hosts its type, or its owner is gone."""


class TransportUnavailableError(DeliveryError):
    """The broker could not take the message (disconnected, buffer full, no stream ack)."""


_DELIVERY_KINDS: dict[str, type[DeliveryError]] = {
    cls.__name__: cls
    for cls in (
        DeliveryError,
        AgentNotFoundError,
        NoHandlerError,
        MailboxFullError,
        AgentStoppedError,
        RuntimeStoppedError,
        NoRespondersError,
        TransportUnavailableError,
    )
}


def error_to_wire(exc: BaseException) -> dict[str, Any]:
    """The JSON form of an error for a remote caller: its kind, message and context."""
    out: dict[str, Any] = {"kind": type(exc).__name__, "message": str(exc)}
    agent_id = getattr(exc, "agent_id", None)
    if isinstance(agent_id, AgentId):
        out["agent"] = [agent_id.type, agent_id.key]
    if isinstance(exc, MessageDroppedError):
        out["reason"] = exc.reason
    if isinstance(exc, UnknownMessageTypeError):
        out["type_name"] = exc.type_name
    if isinstance(exc, PayloadTooLargeError):
        out["size"], out["limit"] = exc.size, exc.limit
    if not isinstance(exc, MootError):  # a bug in the transport itself: say so plainly
        out["kind"] = "HandlerError"
        out["message"] = f"remote side failed: {exc!r}"
    return out


def error_from_wire(data: dict[str, Any], fallback: AgentId) -> MootError:
    """Rebuild the typed error that `error_to_wire` described."""
    kind = str(data.get("kind", "HandlerError"))
    message = str(data.get("message", "remote error"))
    raw = data.get("agent")
    agent_id = AgentId(raw[0], raw[1]) if isinstance(raw, list) and len(raw) == 2 else fallback
    if kind == "MessageDroppedError":
        return MessageDroppedError(message, reason=str(data.get("reason", "")), agent_id=agent_id)
    if kind == "DeadlineExceededError":
        return DeadlineExceededError(message, agent_id=agent_id)
    if kind == "UnknownMessageTypeError":
        return UnknownMessageTypeError(message, type_name=str(data.get("type_name", "")))
    if kind == "PayloadTooLargeError":
        return PayloadTooLargeError(
            message, size=int(data.get("size", 0)), limit=int(data.get("limit", 0))
        )
    if kind == "SerializationError":
        return SerializationError(message)
    delivery = _DELIVERY_KINDS.get(kind)
    if delivery is not None:
        return delivery(message, agent_id=agent_id)
    return HandlerError(message, agent_id=agent_id)
