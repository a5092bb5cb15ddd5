"""A lean tracer provider: the OpenTelemetry API's span, made as a small record in this process
and turned into the SDK's `ReadableSpan` only in the exporter's child process.

The SDK's own span costs tens of microseconds to start and end (attribute cleaning, locks,
span processors), about a whole group-chat turn's CPU. `configure()` installs this provider
when it owns the whole pipeline (no user span processors, the exporter offloaded to a child,
a sampler it knows), so a span here is a few slots filled and one tuple appended to the
offload buffer. Everything else keeps the SDK path.
"""

from __future__ import annotations

import atexit
import os
import time
import traceback
from contextlib import contextmanager
from random import getrandbits
from typing import TYPE_CHECKING, Any, Protocol

from opentelemetry import trace
from opentelemetry.trace import (
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
)

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping, Sequence

    from opentelemetry.context import Context
    from opentelemetry.util.types import Attributes, AttributeValue

_LOW64 = (1 << 64) - 1
_SAMPLED = TraceFlags(TraceFlags.SAMPLED)
_NOT_SAMPLED = TraceFlags(TraceFlags.DEFAULT)
_ALWAYS = 1 << 64  # a bound no trace id reaches: every root is sampled


class Sink(Protocol):
    """Where ended spans go, as `_offload`'s flat records (`ProcessSpanProcessor` is one)."""

    def add(self, record: tuple[Any, ...]) -> None: ...

    def force_flush(self, timeout_millis: int = 30_000) -> bool: ...

    def shutdown(self) -> None: ...


class Sampler:
    """The standard samplers by their `OTEL_TRACES_SAMPLER` names, as one decision: follow a
    parent's sampled flag (the `parentbased_*` ones), else keep a root whose low 64 trace-id
    bits fall under `bound` (as the SDK's `TraceIdRatioBased` does)."""

    __slots__ = ("bound", "parent_based")

    def __init__(self, *, parent_based: bool, bound: int) -> None:
        self.parent_based = parent_based
        self.bound = bound

    def sampled(self, parent: SpanContext | None, trace_id: int) -> bool:
        if parent is not None and self.parent_based:
            return parent.trace_flags.sampled
        return (trace_id & _LOW64) < self.bound


def sampler_from_env() -> Sampler | None:
    """The sampler `OTEL_TRACES_SAMPLER` (and `..._ARG`) name, or None when this provider does
    not know it (a custom or Jaeger sampler, a bad ratio): then the SDK path is used."""
    name = os.environ.get("OTEL_TRACES_SAMPLER", "parentbased_always_on").strip().lower()
    parent_based = name.startswith("parentbased_")
    rule = name.removeprefix("parentbased_")
    if rule == "always_on":
        return Sampler(parent_based=parent_based, bound=_ALWAYS)
    if rule == "always_off":
        return Sampler(parent_based=parent_based, bound=0)
    if rule != "traceidratio":
        return None
    try:
        rate = float(os.environ.get("OTEL_TRACES_SAMPLER_ARG", "1.0"))
    except ValueError:
        return None
    if not 0.0 <= rate <= 1.0:
        return None
    return Sampler(parent_based=parent_based, bound=round(rate * (_LOW64 + 1)))


class LeanTracerProvider(trace.TracerProvider):
    """A `TracerProvider` whose spans are records handed to `sink` when they end.

    The sink holds the resource; `force_flush` and `shutdown` are the sink's (and shutdown
    runs at exit, as the SDK provider's does).
    """

    def __init__(self, sink: Sink, sampler: Sampler) -> None:
        self.sink = sink
        self.sampler = sampler
        self._tracers: dict[tuple[str, str | None], LeanTracer] = {}
        atexit.register(self.shutdown)

    def get_tracer(
        self,
        instrumenting_module_name: str,
        instrumenting_library_version: str | None = None,
        schema_url: str | None = None,
        attributes: Attributes | None = None,
    ) -> LeanTracer:
        key = (instrumenting_module_name, instrumenting_library_version)
        tracer = self._tracers.get(key)
        if tracer is None:
            tracer = self._tracers[key] = LeanTracer(self, *key)
        return tracer

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """Export every span ended so far."""
        return self.sink.force_flush(timeout_millis)

    def shutdown(self) -> None:
        """Flush and stop the sink (idempotent)."""
        atexit.unregister(self.shutdown)
        self.sink.shutdown()


class LeanTracer(trace.Tracer):
    """Starts `LeanSpan`s (or, sampled out, non-recording spans that still carry a context)."""

    def __init__(self, provider: LeanTracerProvider, name: str, version: str | None) -> None:
        self._add = provider.sink.add
        self._sampler = provider.sampler
        self._scope = (name, version)

    def start_span(
        self,
        name: str,
        context: Context | None = None,
        kind: SpanKind = SpanKind.INTERNAL,
        attributes: Attributes = None,
        links: trace._Links = None,
        start_time: int | None = None,
        record_exception: bool = True,
        set_status_on_exception: bool = True,
    ) -> trace.Span:
        parent: SpanContext | None = trace.get_current_span(context).get_span_context()
        if parent is not None and parent.is_valid:
            trace_id = parent.trace_id
            trace_state = parent.trace_state
        else:
            parent = None
            trace_id = getrandbits(128)
            trace_state = None
        sampled = self._sampler.sampled(parent, trace_id)
        span_context = SpanContext(
            trace_id,
            getrandbits(64),
            is_remote=False,
            trace_flags=_SAMPLED if sampled else _NOT_SAMPLED,
            trace_state=trace_state,
        )
        if not sampled:
            return NonRecordingSpan(span_context)
        return LeanSpan(
            self._add,
            name,
            span_context,
            parent,
            kind,
            dict(attributes) if attributes else {},
            links,
            self._scope,
            time.time_ns() if start_time is None else start_time,
        )

    @contextmanager  # the API's decorator is private; the same context manager to a caller
    def start_as_current_span(  # type: ignore[override]
        self,
        name: str,
        context: Context | None = None,
        kind: SpanKind = SpanKind.INTERNAL,
        attributes: Attributes = None,
        links: trace._Links = None,
        start_time: int | None = None,
        record_exception: bool = True,
        set_status_on_exception: bool = True,
        end_on_exit: bool = True,
    ) -> Iterator[trace.Span]:
        span = self.start_span(name, context, kind, attributes, links, start_time)
        with trace.use_span(
            span,
            end_on_exit=end_on_exit,
            record_exception=record_exception,
            set_status_on_exception=set_status_on_exception,
        ) as current:
            yield current


class LeanSpan(trace.Span):
    """A recording span kept as plain values until it ends, then handed on as one tuple."""

    __slots__ = (
        "_add",
        "_attributes",
        "_context",
        "_description",
        "_ended",
        "_events",
        "_kind",
        "_links",
        "_name",
        "_parent",
        "_scope",
        "_start",
        "_status",
    )

    def __init__(
        self,
        add: Any,
        name: str,
        context: SpanContext,
        parent: SpanContext | None,
        kind: SpanKind,
        attributes: dict[str, Any],
        links: trace._Links,
        scope: tuple[str, str | None],
        start: int,
    ) -> None:
        self._add = add
        self._name = name
        self._context = context
        self._parent = parent
        self._kind = kind
        self._attributes = attributes
        self._events: list[tuple[str, int, dict[str, Any]]] | None = None
        self._links = links
        self._scope = scope
        self._start = start
        self._status = StatusCode.UNSET
        self._description: str | None = None
        self._ended = False

    def end(self, end_time: int | None = None) -> None:
        if self._ended:
            return
        self._ended = True
        context = self._context
        parent = self._parent
        events = self._events
        self._add(
            (
                self._name,
                context.trace_id,
                context.span_id,
                int(context.trace_flags),
                0 if parent is None else parent.span_id,
                False if parent is None else parent.is_remote,
                self._kind.value,
                self._start,
                time.time_ns() if end_time is None else end_time,
                self._attributes,
                tuple(events) if events else (),
                _links(self._links),
                self._status.value,
                self._description,
                *self._scope,
            )
        )

    def get_span_context(self) -> SpanContext:
        return self._context

    def set_attributes(self, attributes: Mapping[str, AttributeValue]) -> None:
        for key, value in attributes.items():
            self.set_attribute(key, value)

    def set_attribute(self, key: str, value: Any) -> None:
        if self._ended or value is None:
            return
        self._attributes[key] = tuple(value) if isinstance(value, list) else value

    def add_event(
        self, name: str, attributes: Attributes = None, timestamp: int | None = None
    ) -> None:
        if self._ended:
            return
        if self._events is None:
            self._events = []
        self._events.append(
            (
                name,
                time.time_ns() if timestamp is None else timestamp,
                dict(attributes) if attributes else {},
            )
        )

    def update_name(self, name: str) -> None:
        if not self._ended:
            self._name = name

    def is_recording(self) -> bool:
        return not self._ended

    def set_status(self, status: Status | StatusCode, description: str | None = None) -> None:
        # As the SDK: an OK status is final, and UNSET never replaces another.
        if self._ended or self._status is StatusCode.OK:
            return
        if isinstance(status, Status):
            code, description = status.status_code, status.description
        else:
            code = status
        if code is StatusCode.UNSET:
            return
        self._status = code
        self._description = description if code is StatusCode.ERROR else None

    def record_exception(
        self,
        exception: BaseException,
        attributes: Attributes = None,
        timestamp: int | None = None,
        escaped: bool = False,
    ) -> None:
        event: dict[str, Any] = {
            "exception.type": type(exception).__qualname__,
            "exception.message": str(exception),
            "exception.stacktrace": "".join(
                traceback.format_exception(type(exception), exception, exception.__traceback__)
            ),
            "exception.escaped": str(escaped),
        }
        if attributes:
            event.update(attributes)
        self.add_event("exception", event, timestamp)


def _links(links: Sequence[trace.Link] | Any) -> tuple[Any, ...]:
    if not links:
        return ()
    return tuple(
        (
            link.context.trace_id,
            link.context.span_id,
            int(link.context.trace_flags),
            dict(link.attributes or {}),
        )
        for link in links
    )
