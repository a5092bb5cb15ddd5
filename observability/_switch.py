"""Whether moot's instrumentation runs, read on hot paths as one attribute.

With only the OpenTelemetry API installed (no SDK provider set), every helper returns at once:
the default costs a flag check. `MOOT_OTEL_BYPASS=1` skips even that decision for good; it
exists so benchmarks can measure what the default costs.
"""

from __future__ import annotations

import os

from opentelemetry import metrics, trace


class Switch:
    """`active`: an SDK tracer or meter provider is installed, so spans and metrics are made;
    `propagate`: an SDK tracer provider is, so runtime envelopes carry the trace context;
    `bypass`: neither, ever (benchmarks)."""

    __slots__ = ("active", "bypass", "propagate")

    def __init__(self) -> None:
        self.bypass = os.environ.get("MOOT_OTEL_BYPASS", "") not in ("", "0", "false")
        self.active = False
        self.propagate = False

    def refresh(self) -> bool:
        """Look again for an SDK (a few microseconds: at configure and runtime start, not per
        message or chat): true when active."""
        if self.bypass:
            return False
        tracer_provider = trace.get_tracer_provider()
        tracing = not isinstance(
            tracer_provider, (trace.ProxyTracerProvider, trace.NoOpTracerProvider)
        )
        # The API's own meter providers (proxy and no-op) live in opentelemetry.metrics.
        meter_provider = type(metrics.get_meter_provider())
        measuring = not meter_provider.__module__.startswith("opentelemetry.metrics")
        self.propagate = tracing
        self.active = tracing or measuring
        return self.active


SWITCH = Switch()
"""The process's switch (see `Switch`)."""


def refresh() -> bool:
    """Look again for a tracer or meter provider set after moot started (by your own code).

    `configure()` and every `Runtime.start()` call this; call it yourself if you install a provider
    while a runtime is already running and a chat is under way.
    """
    return SWITCH.refresh()


SWITCH.refresh()
