"""structlog lines inside a span carry its ids; `configure` refuses what it cannot do; the
semconv opt-in switches the provider attribute."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import TYPE_CHECKING, Any

import pytest
import structlog
from opentelemetry import trace

from moot import observability
from moot.observability import semconv as sc

if TYPE_CHECKING:
    from .conftest import Captured


def test_log_lines_inside_a_span_carry_its_trace_and_span_ids(otel: Captured) -> None:
    lines: list[dict[str, Any]] = []

    def keep(logger: Any, method: str, event: Any) -> str:
        lines.append(dict(event))
        return ""

    logger = structlog.wrap_logger(
        structlog.ReturnLogger(), processors=[observability.add_trace_ids, keep]
    )
    logger.info("outside")
    with observability.agent_turn("coder", "chat-1") as step:
        assert step.recording
        logger.info("inside")
        ctx = trace.get_current_span().get_span_context()
    assert "trace_id" not in lines[0]
    assert lines[1]["trace_id"] == f"{ctx.trace_id:032x}"
    assert lines[1]["span_id"] == f"{ctx.span_id:016x}"


def test_an_unknown_exporter_is_refused() -> None:
    with pytest.raises(observability.ObservabilityConfigError, match="unknown exporter"):
        observability.configure(exporter="zipkin")  # type: ignore[arg-type]


def test_nothing_is_configured_from_an_environment_without_otel_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in (
        "OTEL_TRACES_EXPORTER",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    ):
        monkeypatch.delenv(name, raising=False)
    assert observability.configure_from_env() is None
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "none")
    assert observability.configure_from_env() is None


def test_the_stability_opt_in_renames_the_provider_attribute(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("OTEL_SEMCONV_STABILITY_OPT_IN", raising=False)
    assert sc.provider_attribute() == "gen_ai.system"
    monkeypatch.setenv("OTEL_SEMCONV_STABILITY_OPT_IN", "http, gen_ai_latest_experimental")
    assert sc.provider_attribute() == "gen_ai.provider.name"


def test_a_traceparent_round_trips_and_garbage_is_ignored(otel: Captured) -> None:
    with observability.workflow("group_chat", "c1") as _:
        captured = observability.capture()
    assert captured is not None
    parsed = observability.parse(captured)
    assert parsed is not None
    assert parsed.is_remote
    assert observability.parse("00-zz-11-01") is None
    assert observability.attach("not a traceparent") is None


def test_by_default_nothing_is_made_and_envelopes_carry_no_trace_context() -> None:
    """A fresh process with the API only: no SDK provider, so no spans, no context."""
    script = """
import asyncio
from moot import observability
from moot.runtime import Agent, AgentId, Envelope, Runtime, handler

seen = []

class Echo(Agent):
    @handler
    async def on_text(self, message: str, ctx: Envelope) -> str:
        seen.append(ctx.trace)
        return message

async def main():
    async with Runtime() as rt:
        rt.register("echo", Echo)
        with observability.workflow("group_chat", "c1") as span:
            assert span.recording is False
            await rt.send("hi", AgentId("echo", "1"))
    assert seen == [None], seen
    assert observability.SWITCH.active is False
    assert observability.capture() is None
    print("quiet")

asyncio.run(main())
"""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "quiet"
