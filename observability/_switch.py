"""Whether moot's instrumentation runs, read on hot paths as one attribute.

`MOOT_OTEL_BYPASS=1` skips the instrumentation entirely (not even the no-op OpenTelemetry API is
called); it exists so benchmarks can measure what the API-only default costs.
"""

from __future__ import annotations

import os

from opentelemetry import trace


class Switch:
    """Two flags: `bypass` (no instrumentation at all) and `propagate` (a tracing SDK is present,
    so runtime envelopes carry the sender's trace context)."""

    __slots__ = ("bypass", "propagate")

    def __init__(self) -> None:
        self.bypass = os.environ.get("MOOT_OTEL_BYPASS", "") not in ("", "0", "false")
        self.propagate = False

    def refresh(self) -> bool:
        """Look again for a tracing SDK (cheap, not per message): true when spans are recorded."""
        provider = trace.get_tracer_provider()
        recording = not self.bypass and not isinstance(
            provider, (trace.ProxyTracerProvider, trace.NoOpTracerProvider)
        )
        self.propagate = recording
        return recording


SWITCH = Switch()
"""The process's switch: the runtime reads `SWITCH.propagate` once per envelope."""


def refresh() -> bool:
    """Look again for a tracer provider set after moot started (e.g. by the user's own code).

    Runtimes and chats call this when they start; call it yourself if you install a tracer
    provider while a runtime is already running.
    """
    return SWITCH.refresh()
