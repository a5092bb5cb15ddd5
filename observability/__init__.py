"""moot.observability: OpenTelemetry traces and metrics named by the GenAI semantic conventions.

Off unless configured: with only `opentelemetry-api` installed every span is a no-op and nothing
leaves the process. `configure()` (or your own SDK set-up) turns it on. It imports nothing from
moot, so every layer, the runtime included, may use it.
"""

from typing import Any

from . import _semconv as semconv
from ._config import Telemetry, configure, configure_from_env
from ._logging import add_trace_ids
from ._propagation import TRACEPARENT, attach, capture, detach, parse, within
from ._spans import (
    CONTENT,
    CodeRun,
    ModelCall,
    SpeakerSelection,
    Step,
    agent_turn,
    cached_model_call,
    code_run,
    dead_letter,
    event,
    model_call,
    speaker_selection,
    tool_call,
    unwatch,
    watch,
    workflow,
)
from ._switch import SWITCH, refresh


def __getattr__(name: str) -> Any:
    """`ObservabilityConfigError` loads on first use: it subclasses moot.runtime's ConfigError,
    and moot.runtime imports this package, so it cannot load with it."""
    if name == "ObservabilityConfigError":
        from ._errors import ObservabilityConfigError

        return ObservabilityConfigError
    if name == "ProcessSpanProcessor":  # needs the SDK (the `moot[otel]` extra)
        from ._offload import ProcessSpanProcessor

        return ProcessSpanProcessor
    raise AttributeError(f"module 'moot.observability' has no attribute {name!r}")


__all__ = [
    "CONTENT",
    "SWITCH",
    "TRACEPARENT",
    "CodeRun",
    "ModelCall",
    "ObservabilityConfigError",
    "ProcessSpanProcessor",
    "SpeakerSelection",
    "Step",
    "Telemetry",
    "add_trace_ids",
    "agent_turn",
    "attach",
    "cached_model_call",
    "capture",
    "code_run",
    "configure",
    "configure_from_env",
    "dead_letter",
    "detach",
    "event",
    "model_call",
    "parse",
    "refresh",
    "semconv",
    "speaker_selection",
    "tool_call",
    "unwatch",
    "watch",
    "within",
    "workflow",
]
