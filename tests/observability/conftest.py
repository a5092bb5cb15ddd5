"""The SDK with in-memory exporters, installed once per test process (a tracer provider can be
set only once), and cleared before each test."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from moot import observability

if TYPE_CHECKING:
    from collections.abc import Iterator

_INSTALLED: dict[str, object] = {}


class Captured:
    def __init__(self, spans: InMemorySpanExporter, metrics: InMemoryMetricReader) -> None:
        self.spans = spans
        self.metrics = metrics


@pytest.fixture
def otel() -> Iterator[Captured]:
    if not _INSTALLED:
        spans = InMemorySpanExporter()
        reader = InMemoryMetricReader()
        observability.configure(
            span_processors=[SimpleSpanProcessor(spans)], metric_readers=[reader]
        )
        _INSTALLED["captured"] = Captured(spans, reader)
    captured = _INSTALLED["captured"]
    assert isinstance(captured, Captured)
    captured.spans.clear()
    yield captured
    captured.spans.clear()
