"""A span processor that exports from a child process, so encoding and sending spans costs the
chat's process next to nothing: a standard `SpanProcessor` for the user's SDK set-up.

The parent keeps each finished span as a tuple of plain values (ids, times, attributes, events,
status) in a list; a thread hands the list to the child every `delay_ms` or `max_batch` spans as
one `marshal` frame over a pipe. The child (`python -m moot.observability._offload`) rebuilds
the SDK's `ReadableSpan`s and gives them to the exporter it builds from the same `OTEL_*`
environment (or the `module:factory` the user names), so the protobuf work and the HTTP calls
run on another core and never hold this process's GIL.
"""

from __future__ import annotations

import marshal
import os
import struct
import subprocess
import sys
import threading
from collections import deque
from typing import TYPE_CHECKING, Any

import structlog
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor

if TYPE_CHECKING:
    from opentelemetry.context import Context
    from opentelemetry.sdk.trace import Span
    from opentelemetry.sdk.trace.export import SpanExporter

log = structlog.get_logger("moot.observability")

_HEADER = struct.Struct("!I")


class ProcessSpanProcessor(SpanProcessor):
    """Hand finished spans to an exporter running in a child process.

    `exporter` is `"otlp"` (OTLP/HTTP, configured by the standard `OTEL_EXPORTER_OTLP_*`
    variables, or `endpoint`), `"console"`, or `"module:factory"` (a callable the child imports
    and calls to get a `SpanExporter`). Past `max_queue` spans waiting, new ones are dropped and
    counted (as the SDK's batch processor does); `force_flush` and `shutdown` wait until the
    child has exported everything sent.
    """

    def __init__(
        self,
        exporter: str = "otlp",
        *,
        endpoint: str | None = None,
        max_batch: int = 512,
        delay_ms: int = 500,
        max_queue: int = 100_000,
        resource: dict[str, Any] | None = None,
    ) -> None:
        # The child answers flushes on a pipe of its own: its stdout stays the user's (the
        # console exporter prints there).
        acks, ack_writer = os.pipe()
        command = [sys.executable, "-m", "moot.observability._offload", exporter, endpoint or ""]
        try:
            self._child = subprocess.Popen(
                [*command, str(ack_writer)], stdin=subprocess.PIPE, pass_fds=(ack_writer,)
            )
        finally:
            os.close(ack_writer)
        self._acks = os.fdopen(acks, "rb")
        # A deque: `append` here and `popleft` in the writer thread are each atomic, so a span
        # ended while a batch is taken is never lost between them.
        self._buffer: deque[tuple[Any, ...]] = deque()
        self._resource = resource
        self._max_batch = max_batch
        self._delay = delay_ms / 1000
        self._max_queue = max_queue
        self.dropped = 0
        self._unacked = 0  # spans sent since the child last confirmed a flush
        self._lock = threading.Lock()  # one writer on the pipe at a time
        self._wake = threading.Event()
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name="moot-span-offload", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ SpanProcessor

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        pass

    def on_end(self, span: ReadableSpan) -> None:
        if self._stopped or not span.context.trace_flags.sampled:
            return
        if len(self._buffer) >= self._max_queue:
            self.dropped += 1
            return
        if self._resource is None:
            self._resource = dict(span.resource.attributes)
        self.add(_flatten(span))

    def add(self, record: tuple[Any, ...]) -> None:
        """Queue one finished span already flattened (the lean provider's spans come so)."""
        buffer = self._buffer
        if self._stopped:
            return
        if len(buffer) >= self._max_queue:
            self.dropped += 1
            return
        buffer.append(record)
        # Wake the writer as the buffer reaches a batch, not for every span past it (it
        # takes the whole buffer; its timer covers a crossing missed during a take).
        if len(buffer) == self._max_batch:
            self._wake.set()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """Send every span ended so far and wait until the child has exported them."""
        return self._flush(timeout_millis / 1000)

    def shutdown(self) -> None:
        """Flush, then stop the child and the thread."""
        if self._stopped:
            return
        self._flush(30.0)
        self._stopped = True
        self._wake.set()
        self._thread.join(timeout=5)
        with self._lock:
            stdin = self._child.stdin
            if stdin is not None:
                try:
                    stdin.close()  # end of input: the child shuts its exporter down and exits
                except OSError:
                    pass
        try:
            self._child.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self._child.kill()
            self._child.wait()
        self._acks.close()
        if self.dropped:
            log.warning("spans.dropped", dropped=self.dropped, max_queue=self._max_queue)

    # ------------------------------------------------------------------ the writer thread

    def _run(self) -> None:
        while not self._stopped:
            self._wake.wait(self._delay)
            self._wake.clear()
            with self._lock:
                self._send_batch()

    def _send_batch(self) -> bool:
        """Write what is buffered as one frame (the caller holds the lock); False if the child
        is gone."""
        buffer = self._buffer
        batch = [buffer.popleft() for _ in range(len(buffer))]
        if not batch:
            return True
        if self._write(("spans", self._resource or {}, batch)):
            self._unacked += len(batch)
            return True
        self.dropped += len(batch)
        return False

    def _write(self, frame: tuple[Any, ...]) -> bool:
        stdin = self._child.stdin
        if stdin is None or stdin.closed:
            return False
        payload = marshal.dumps(frame)
        try:
            stdin.write(_HEADER.pack(len(payload)) + payload)
            stdin.flush()
        except (OSError, ValueError):
            # The child is gone (its exporter failed to load, or it was killed): say so once,
            # then count every span that cannot be sent as dropped.
            log.warning("spans.exporter_gone", returncode=self._child.poll())
            try:
                stdin.close()
            except OSError:
                pass
            return False
        return True

    def _flush(self, timeout: float) -> bool:
        if self._stopped:
            return False
        with self._lock:
            if not (self._send_batch() and self._write(("flush",))):
                return False
            # The child answers each flush with one line once its exporter has flushed.
            timer = threading.Timer(timeout, self._child.kill)
            timer.start()
            try:
                flushed = self._acks.readline() == b"flushed\n"
            finally:
                timer.cancel()
            if not flushed:  # the child died with them: count what it never confirmed
                log.warning("spans.exporter_gone", returncode=self._child.poll())
                self.dropped += self._unacked
            self._unacked = 0
            return flushed


def _flatten(span: ReadableSpan) -> tuple[Any, ...]:
    """The span as plain values `marshal` can write (the child rebuilds it)."""
    ctx = span.context
    parent = span.parent
    status = span.status
    scope = span.instrumentation_scope
    events = span.events
    links = span.links
    return (
        span.name,
        ctx.trace_id,
        ctx.span_id,
        int(ctx.trace_flags),
        0 if parent is None else parent.span_id,
        False if parent is None else parent.is_remote,
        span.kind.value,
        span.start_time,
        span.end_time,
        dict(span.attributes or _EMPTY),
        tuple((e.name, e.timestamp, dict(e.attributes or _EMPTY)) for e in events)
        if events
        else (),
        tuple(
            (
                link.context.trace_id,
                link.context.span_id,
                int(link.context.trace_flags),
                dict(link.attributes or _EMPTY),
            )
            for link in links
        )
        if links
        else (),
        status.status_code.value,
        status.description,
        "" if scope is None else scope.name,
        None if scope is None else scope.version,
    )


_EMPTY: dict[str, Any] = {}


# ---------------------------------------------------------------------- the child


def _rebuild(record: tuple[Any, ...], resource: Any) -> ReadableSpan:
    from opentelemetry.sdk.trace import Event
    from opentelemetry.sdk.util.instrumentation import InstrumentationScope
    from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags

    (name, trace_id, span_id, flags, parent_id, parent_remote, kind, start, end, attributes) = (
        record[:10]
    )
    events, links, code, description, scope_name, scope_version = record[10:]
    trace_flags = TraceFlags(flags)
    return ReadableSpan(
        name=name,
        context=SpanContext(trace_id, span_id, is_remote=False, trace_flags=trace_flags),
        parent=(
            SpanContext(trace_id, parent_id, is_remote=parent_remote, trace_flags=trace_flags)
            if parent_id
            else None
        ),
        resource=resource,
        attributes=attributes,
        events=[Event(event_name, attrs, timestamp) for event_name, timestamp, attrs in events],
        links=[
            Link(SpanContext(t, s, is_remote=True, trace_flags=TraceFlags(f)), attrs)
            for t, s, f, attrs in links
        ],
        kind=SpanKind(kind),
        status=Status(StatusCode(code), description),
        start_time=start,
        end_time=end,
        instrumentation_scope=InstrumentationScope(scope_name, scope_version),
    )


def _exporter(name: str, endpoint: str) -> SpanExporter:
    if name == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter()
    if name == "otlp":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        if endpoint:
            return OTLPSpanExporter(endpoint=f"{endpoint.rstrip('/')}/v1/traces")
        return OTLPSpanExporter()
    import importlib

    module, _, attr = name.partition(":")
    made: SpanExporter = getattr(importlib.import_module(module), attr)()
    return made


def main(argv: list[str]) -> int:
    """The child: read frames from stdin until it closes, export each batch."""
    from opentelemetry.sdk.resources import Resource

    exporter = _exporter(argv[0], argv[1])
    stdin = sys.stdin.buffer
    acks = os.fdopen(int(argv[2]), "wb")
    resources: dict[Any, Resource] = {}
    while True:
        header = stdin.read(_HEADER.size)
        if len(header) < _HEADER.size:
            break
        frame = marshal.loads(stdin.read(_HEADER.unpack(header)[0]))
        if frame[0] == "spans":
            key = tuple(sorted(frame[1].items()))
            resource = resources.get(key)
            if resource is None:
                resource = resources[key] = Resource(frame[1])
            exporter.export([_rebuild(record, resource) for record in frame[2]])
        elif frame[0] == "flush":
            exporter.force_flush()
            acks.write(b"flushed\n")
            acks.flush()
    exporter.shutdown()
    return 0


if __name__ == "__main__":
    os.environ.pop("MOOT_OTEL_OFFLOAD", None)
    sys.exit(main(sys.argv[1:]))
