"""The W3C `traceparent` of the current span, captured when a message is sent and restored around
its handler, so a trace follows a chat through mailboxes and across NATS."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from opentelemetry import context, trace

if TYPE_CHECKING:
    from collections.abc import Awaitable
    from contextvars import Token

TRACEPARENT = "traceparent"
"""The header (and envelope field) name, as in the W3C Trace Context recommendation."""


def capture() -> str | None:
    """The current span's `traceparent`, or None outside a valid span."""
    ctx = trace.get_current_span().get_span_context()
    if not ctx.is_valid:
        return None
    return f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{int(ctx.trace_flags):02x}"


def parse(traceparent: str) -> trace.SpanContext | None:
    """A remote span context from a `traceparent`; None when it is malformed."""
    parts = traceparent.split("-")
    if len(parts) < 4 or len(parts[1]) != 32 or len(parts[2]) != 16:
        return None
    try:
        trace_id, span_id, flags = int(parts[1], 16), int(parts[2], 16), int(parts[3][:2], 16)
    except ValueError:
        return None
    span_context = trace.SpanContext(
        trace_id, span_id, is_remote=True, trace_flags=trace.TraceFlags(flags)
    )
    return span_context if span_context.is_valid else None


_parents: dict[str, context.Context] = {}
_PARENTS_KEPT = 4096


def attach(traceparent: str) -> Token[context.Context] | None:
    """Make `traceparent` the current parent in this task; a token for `detach`, or None.

    The parent context of a `traceparent` is built once and reused (a chat sends many messages
    under one span); the few thousand most recent are kept.
    """
    parent = _parents.get(traceparent)
    if parent is None:
        span_context = parse(traceparent)
        if span_context is None:
            return None
        parent = trace.set_span_in_context(trace.NonRecordingSpan(span_context), context.Context())
        if len(_parents) >= _PARENTS_KEPT:
            _parents.clear()
        _parents[traceparent] = parent
    return context.attach(parent)


def detach(token: Token[context.Context] | None) -> None:
    """Undo `attach`."""
    if token is not None:
        context.detach(token)


async def within(traceparent: str, step: Awaitable[Any]) -> Any:
    """Await `step` with `traceparent` as its parent context (the runtime's queued turns)."""
    token = attach(traceparent)
    try:
        return await step
    finally:
        detach(token)
