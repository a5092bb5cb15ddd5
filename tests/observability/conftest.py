"""Spans and metrics captured in memory, installed once per test process (a tracer provider can
be set only once), and cleared before each test.

`otel` runs each test twice: over the SDK's spans (`SimpleSpanProcessor`) and over the lean
provider's records, rebuilt as `ReadableSpan`s by the same function the exporter's child uses.
The global provider is a test-only switch between the two.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from moot import observability
from moot.observability._lean import LeanTracerProvider, Sampler
from moot.observability._offload import _rebuild

if TYPE_CHECKING:
    from collections.abc import Iterator

_INSTALLED: dict[str, object] = {}


class Captured:
    def __init__(self, spans: InMemorySpanExporter, metrics: InMemoryMetricReader) -> None:
        self.spans = spans
        self.metrics = metrics


class InMemorySink:
    """The lean provider's sink for tests: each record rebuilt and exported at once."""

    def __init__(self, exporter: InMemorySpanExporter) -> None:
        self.exporter = exporter
        self.resource = Resource.create({})

    def add(self, record: tuple[Any, ...]) -> None:
        self.exporter.export([_rebuild(record, self.resource)])

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True

    def shutdown(self) -> None:
        pass


class _Switched(trace.Tracer):
    def __init__(self, switch: Switch, name: str) -> None:
        self._switch = switch
        self._name = name

    def _tracer(self) -> trace.Tracer:
        return self._switch.current.get_tracer(self._name)

    def start_span(self, *args: Any, **kwargs: Any) -> trace.Span:
        return self._tracer().start_span(*args, **kwargs)

    def start_as_current_span(self, *args: Any, **kwargs: Any) -> Any:
        return self._tracer().start_as_current_span(*args, **kwargs)


class Switch(trace.TracerProvider):
    """A global provider that hands every span to `current` (the SDK's or the lean one)."""

    def __init__(self, current: trace.TracerProvider) -> None:
        self.current = current

    def get_tracer(  # type: ignore[override]  # the API's keywords are passed on untouched
        self, name: str, *args: Any, **kwargs: Any
    ) -> trace.Tracer:
        return _Switched(self, name)


@pytest.fixture(params=["sdk", "lean"])
def otel(request: pytest.FixtureRequest) -> Iterator[Captured]:
    if not _INSTALLED:
        spans = InMemorySpanExporter()
        reader = InMemoryMetricReader()
        sdk = TracerProvider()
        sdk.add_span_processor(SimpleSpanProcessor(spans))
        lean = LeanTracerProvider(InMemorySink(spans), Sampler(parent_based=True, bound=1 << 64))
        switch = Switch(sdk)
        trace.set_tracer_provider(switch)
        metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))
        observability.refresh()
        _INSTALLED.update(captured=Captured(spans, reader), switch=switch, sdk=sdk, lean=lean)
    captured = _INSTALLED["captured"]
    installed = _INSTALLED["switch"]
    assert isinstance(captured, Captured)
    assert isinstance(installed, Switch)
    chosen = _INSTALLED[request.param]
    assert isinstance(chosen, trace.TracerProvider)
    installed.current = chosen
    captured.spans.clear()
    yield captured
    captured.spans.clear()
