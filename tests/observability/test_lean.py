"""The lean provider honours the API: contexts, sampling as the SDK's samplers decide, W3C
propagation, `use_span`, statuses and exceptions; `configure` picks it only when it owns the
whole pipeline."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from random import getrandbits

import pytest
from opentelemetry import context, trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_OFF,
    ALWAYS_ON,
    Decision,
    ParentBased,
    TraceIdRatioBased,
)
from opentelemetry.sdk.trace.sampling import Sampler as SdkSampler
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from moot.observability._lean import LeanTracerProvider, Sampler, sampler_from_env

from .conftest import InMemorySink

ALL = 1 << 64


def _provider(sampler: Sampler | None = None) -> tuple[LeanTracerProvider, InMemorySpanExporter]:
    spans = InMemorySpanExporter()
    provider = LeanTracerProvider(
        InMemorySink(spans), sampler or Sampler(parent_based=True, bound=ALL)
    )
    return provider, spans


@pytest.mark.parametrize(
    ("name", "arg", "sdk"),
    [
        ("always_on", None, ALWAYS_ON),
        ("always_off", None, ALWAYS_OFF),
        ("traceidratio", "0.25", TraceIdRatioBased(0.25)),
        ("parentbased_always_on", None, ParentBased(ALWAYS_ON)),
        ("parentbased_always_off", None, ParentBased(ALWAYS_OFF)),
        ("parentbased_traceidratio", "0.25", ParentBased(TraceIdRatioBased(0.25))),
    ],
)
def test_each_standard_sampler_decides_as_the_sdks(
    monkeypatch: pytest.MonkeyPatch, name: str, arg: str | None, sdk: SdkSampler
) -> None:
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", name)
    if arg is not None:
        monkeypatch.setenv("OTEL_TRACES_SAMPLER_ARG", arg)
    ours = sampler_from_env()
    assert ours is not None
    for _ in range(400):
        trace_id = getrandbits(128)
        for parent_flags in (None, 0, 1):
            parent = None
            parent_context = None
            if parent_flags is not None:
                parent = trace.SpanContext(
                    trace_id,
                    getrandbits(64),
                    is_remote=True,
                    trace_flags=trace.TraceFlags(parent_flags),
                )
                parent_context = trace.set_span_in_context(trace.NonRecordingSpan(parent))
            theirs = sdk.should_sample(parent_context, trace_id, "s").decision
            expected = theirs is Decision.RECORD_AND_SAMPLE
            assert ours.sampled(parent, trace_id) is expected, (name, parent_flags)


@pytest.mark.parametrize(
    ("name", "arg"), [("jaeger_remote", None), ("xray", None), ("traceidratio", "lots")]
)
def test_an_unknown_sampler_is_left_to_the_sdk(
    monkeypatch: pytest.MonkeyPatch, name: str, arg: str | None
) -> None:
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", name)
    if arg is not None:
        monkeypatch.setenv("OTEL_TRACES_SAMPLER_ARG", arg)
    assert sampler_from_env() is None


def test_children_share_the_trace_and_name_their_parent() -> None:
    provider, spans = _provider()
    tracer = provider.get_tracer("t", "1.0")
    with tracer.start_as_current_span("outer", kind=SpanKind.SERVER) as outer:
        assert outer.is_recording()
        assert trace.get_current_span() is outer
        inner = tracer.start_span("inner", attributes={"n": 1})
        inner.set_attribute("tags", ["a", "b"])
        inner.add_event("moot.model.retry", {"attempt": 1})
        inner.end()
        assert not inner.is_recording()
        inner.set_attribute("late", 1)  # ignored once ended
    finished = {s.name: s for s in spans.get_finished_spans()}
    assert set(finished) == {"outer", "inner"}
    assert finished["inner"].parent is not None
    assert finished["inner"].parent.span_id == outer.get_span_context().span_id
    assert finished["inner"].context.trace_id == outer.get_span_context().trace_id
    assert dict(finished["inner"].attributes or {}) == {"n": 1, "tags": ("a", "b")}
    assert finished["inner"].events[0].name == "moot.model.retry"
    assert finished["outer"].kind is SpanKind.SERVER
    assert finished["outer"].parent is None
    assert finished["outer"].instrumentation_scope is not None
    assert finished["outer"].instrumentation_scope.version == "1.0"


def test_a_traceparent_injected_from_a_lean_span_is_extracted_as_its_parent() -> None:
    provider, spans = _provider()
    tracer = provider.get_tracer("t")
    carrier: dict[str, str] = {}
    with tracer.start_as_current_span("client"):
        TraceContextTextMapPropagator().inject(carrier)
    remote = TraceContextTextMapPropagator().extract(carrier)
    with tracer.start_as_current_span("server", context=remote):
        pass
    client, server = spans.get_finished_spans()
    assert server.parent is not None
    assert server.parent.is_remote
    assert server.parent.span_id == client.context.span_id
    assert server.context.trace_id == client.context.trace_id


def test_a_sampled_out_span_records_nothing_but_its_children_follow_it() -> None:
    provider, spans = _provider(Sampler(parent_based=True, bound=0))
    tracer = provider.get_tracer("t")
    with tracer.start_as_current_span("root") as root:
        assert not root.is_recording()
        assert root.get_span_context().is_valid
        child = tracer.start_span("child")
        assert not child.is_recording()
        assert child.get_span_context().trace_id == root.get_span_context().trace_id
        child.end()
    assert spans.get_finished_spans() == ()


def test_an_exception_through_use_span_is_an_error_with_its_event() -> None:
    provider, spans = _provider()
    tracer = provider.get_tracer("t")
    with pytest.raises(ValueError, match="bad"), tracer.start_as_current_span("failing"):
        raise ValueError("bad")
    ok = tracer.start_span("ok")
    ok.set_status(StatusCode.OK)
    ok.set_status(Status(StatusCode.ERROR, "too late"))  # OK is final
    ok.end()
    failing, finished_ok = spans.get_finished_spans()
    assert failing.status.status_code is StatusCode.ERROR
    assert failing.status.description == "ValueError: bad"
    (event,) = failing.events
    assert event.name == "exception"
    assert event.attributes is not None
    assert event.attributes["exception.type"] == "ValueError"
    assert "raise ValueError" in str(event.attributes["exception.stacktrace"])
    assert finished_ok.status.status_code is StatusCode.OK


def test_detached_context_is_restored_after_use_span() -> None:
    provider, _ = _provider()
    before = context.get_current()
    with trace.use_span(provider.get_tracer("t").start_span("s"), end_on_exit=True):
        pass
    assert context.get_current() == before


_CONFIGURE = """
import json, sys
from moot import observability
telemetry = observability.configure(exporter="console", lean={lean})
with observability.workflow("group_chat", "c1", "m"):
    with observability.agent_turn("a", "c1") as step:
        step.event("moot.model.retry", {{"attempt": 1}})
telemetry.shutdown()
print("provider", type(telemetry.tracer_provider).__name__, file=sys.stderr)
"""


@pytest.mark.parametrize(
    ("lean", "sampler", "provider"),
    [
        ("True", "parentbased_always_on", "LeanTracerProvider"),
        ("False", "parentbased_always_on", "TracerProvider"),
        ("True", "jaeger_remote", "TracerProvider"),  # not one it knows: the SDK's
    ],
)
def test_configure_exports_lean_spans_through_the_child_when_asked(
    lean: str, sampler: str, provider: str
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "MOOT_OTEL"))}
    env["OTEL_TRACES_SAMPLER"] = sampler
    env["OTEL_METRICS_EXPORTER"] = "none"
    done = subprocess.run(
        [sys.executable, "-c", _CONFIGURE.format(lean=lean)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert f"provider {provider}\n" in done.stderr
    if sampler == "jaeger_remote":
        return  # the SDK's own sampler fallback decides what is exported
    decoder = json.JSONDecoder()
    text, spans = done.stdout, []
    while text.strip():
        span, end = decoder.raw_decode(text.lstrip())
        spans.append(span)
        text = text.lstrip()[end:]
    named = {span["name"]: span for span in spans if "name" in span}
    turn, chat = named["invoke_agent a"], named["invoke_workflow m"]
    assert turn["parent_id"] == chat["context"]["span_id"]
    assert turn["attributes"]["gen_ai.agent.name"] == "a"
    assert turn["events"][0]["name"] == "moot.model.retry"
