"""`ProcessSpanProcessor`: spans ended here are exported, whole, by the exporter running in its
child process; flush waits for them, shutdown stops the child."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import Link, SpanKind, StatusCode

from moot.observability import ProcessSpanProcessor

HELPERS = Path(__file__).resolve().parents[1] / "_helpers"


@pytest.fixture
def span_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "spans.jsonl"
    monkeypatch.setenv("MOOT_TEST_SPAN_FILE", str(path))
    monkeypatch.setenv("PYTHONPATH", str(HELPERS))
    return path


def _read(path: Path) -> dict[str, dict[str, Any]]:
    spans = [json.loads(line) for line in path.read_text().splitlines()]
    return {span["name"]: span for span in spans}


def test_spans_cross_to_the_child_exporter_whole(span_file: Path) -> None:
    processor = ProcessSpanProcessor("span_file:exporter")
    provider = TracerProvider(resource=Resource.create({"service.name": "offload-test"}))
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("test", "1.2")
    with tracer.start_as_current_span("outer", kind=SpanKind.SERVER) as outer:
        outer.set_attribute("moot.speaker.candidates", ("a", "b"))
        with tracer.start_as_current_span("inner", attributes={"n": 3, "x": 0.5}) as inner:
            inner.add_event("moot.model.retry", {"attempt": 1})
        failed = tracer.start_span("failed", links=[Link(outer.get_span_context(), {"k": "v"})])
        failed.record_exception(ValueError("bad"))
        failed.set_status(StatusCode.ERROR, "bad")
        failed.end()
    assert provider.force_flush()

    spans = _read(span_file)
    assert set(spans) == {"outer", "inner", "failed"}
    outer_id = f"0x{outer.get_span_context().span_id:016x}"
    trace_id = f"0x{outer.get_span_context().trace_id:032x}"
    assert spans["outer"]["context"]["span_id"] == outer_id
    assert spans["outer"]["context"]["trace_id"] == trace_id
    assert spans["outer"]["parent_id"] is None
    assert spans["outer"]["kind"] == "SpanKind.SERVER"
    assert spans["outer"]["attributes"] == {"moot.speaker.candidates": ["a", "b"]}
    assert spans["outer"]["resource"]["attributes"]["service.name"] == "offload-test"
    assert spans["inner"]["parent_id"] == outer_id
    assert spans["inner"]["context"]["trace_id"] == trace_id
    assert spans["inner"]["attributes"] == {"n": 3, "x": 0.5}
    (event,) = spans["inner"]["events"]
    assert event["name"] == "moot.model.retry"
    assert event["attributes"] == {"attempt": 1}
    assert spans["failed"]["status"]["status_code"] == "ERROR"
    assert spans["failed"]["status"]["description"] == "bad"
    assert spans["failed"]["events"][0]["name"] == "exception"
    (link,) = spans["failed"]["links"]
    assert link["context"]["span_id"] == outer_id
    assert link["attributes"] == {"k": "v"}
    assert spans["inner"]["start_time"] <= spans["inner"]["end_time"]

    provider.shutdown()
    assert processor.dropped == 0
    assert not processor.force_flush()  # stopped: nothing more is taken


def test_shutdown_exports_what_is_buffered_and_stops_the_child(span_file: Path) -> None:
    processor = ProcessSpanProcessor("span_file:exporter", delay_ms=60_000)
    provider = TracerProvider()
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("test")
    for n in range(1000):
        tracer.start_span(f"s{n}").end()
    provider.shutdown()  # no flush asked for: shutdown sends the rest
    assert len(_read(span_file)) == 1000


def test_a_full_queue_drops_and_counts_new_spans(span_file: Path) -> None:
    processor = ProcessSpanProcessor("span_file:exporter", delay_ms=60_000, max_queue=10)
    provider = TracerProvider()
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("test")
    for n in range(15):
        tracer.start_span(f"s{n}").end()
    assert processor.dropped == 5
    provider.shutdown()
    assert set(_read(span_file)) == {f"s{n}" for n in range(10)}


def test_a_child_that_cannot_export_loses_spans_counted_not_raised(span_file: Path) -> None:
    processor = ProcessSpanProcessor("span_file:no_such_factory", delay_ms=60_000)
    provider = TracerProvider()
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("test")
    for n in range(3):
        tracer.start_span(f"s{n}").end()
    assert not processor.force_flush()  # the child exited: nothing was exported
    assert processor.dropped == 3
    provider.shutdown()
    assert not span_file.exists()
