"""`configure()`: install the OpenTelemetry SDK with an exporter, in code or from `OTEL_*`."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from opentelemetry import metrics, trace

from ._spans import CONTENT
from ._switch import SWITCH

if TYPE_CHECKING:
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import MetricReader
    from opentelemetry.sdk.trace import SpanProcessor, TracerProvider

    from ._lean import LeanTracerProvider


@dataclass(frozen=True, slots=True, kw_only=True)
class Telemetry:
    """What `configure` installed; `shutdown()` flushes and stops the exporters."""

    tracer_provider: TracerProvider | LeanTracerProvider
    meter_provider: MeterProvider | None

    def force_flush(self, timeout_millis: int = 10_000) -> bool:
        """Export every finished span and the current metrics now."""
        ok = self.tracer_provider.force_flush(timeout_millis)
        if self.meter_provider is not None:
            ok = self.meter_provider.force_flush(timeout_millis) and ok
        return ok

    def shutdown(self) -> None:
        """Flush and stop; call it before the process exits so nothing buffered is lost."""
        self.tracer_provider.shutdown()
        if self.meter_provider is not None:
            self.meter_provider.shutdown()


def configure(
    *,
    service_name: str | None = None,
    endpoint: str | None = None,
    exporter: Literal["otlp", "console", "none"] | None = None,
    span_processors: list[SpanProcessor] | None = None,
    metric_readers: list[MetricReader] | None = None,
    capture_content: bool | None = None,
    metrics_interval_ms: int | None = None,
    offload: bool | None = None,
    lean: bool | None = None,
) -> Telemetry:
    """Install a tracer (and meter) provider as the process's global one and return it.

    Without arguments it reads the standard variables: `OTEL_SERVICE_NAME`,
    `OTEL_TRACES_EXPORTER` (`otlp`, `console`, `none`; default `otlp`),
    `OTEL_EXPORTER_OTLP_ENDPOINT` / `..._TRACES_ENDPOINT` / `..._METRICS_ENDPOINT`, and so on
    (the exporter reads its own). `span_processors` / `metric_readers` replace the exporter
    (tests pass an in-memory one). Spans are exported from a child process
    (`ProcessSpanProcessor`: the encoding and sending never hold this process's GIL) unless
    `offload=False` or `MOOT_OTEL_OFFLOAD=0`, which use the SDK's `BatchSpanProcessor` in a
    thread instead. With `lean=True` (or `MOOT_OTEL_LEAN=1`), when this call owns the whole
    pipeline (no `span_processors`, offloaded, a standard `OTEL_TRACES_SAMPLER`), spans are
    moot's own small records, made into SDK spans only in the exporter's child process (see
    `_lean`); otherwise, and with `lean=False`, the SDK's spans. Content is recorded only with
    `capture_content=True` or `OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true`.
    Nothing here is called unless you call it: moot exports nothing by default.

    Raises:
        ObservabilityConfigError: the `moot[otel]` extra is not installed, or `exporter` is
            not one of the names above.
    """
    try:
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError as exc:  # pragma: no cover - the dev install has the SDK
        raise _config_error(
            "exporting telemetry needs the SDK: pip install 'moot[otel]'", setting="exporter"
        ) from exc
    attributes: dict[str, Any] = {}
    if service_name is not None:
        attributes["service.name"] = service_name
    resource = Resource.create(attributes)
    sdk_provider = TracerProvider(resource=resource)
    tracer_provider: TracerProvider | LeanTracerProvider = sdk_provider
    choice = exporter or os.environ.get("OTEL_TRACES_EXPORTER", "otlp").split(",")[0].strip()
    if choice not in ("otlp", "console", "none"):
        raise _config_error(
            f"unknown exporter {choice!r}: use 'otlp', 'console' or 'none'", setting="exporter"
        )
    readers: list[MetricReader] = list(metric_readers or ())
    if span_processors is not None:
        for processor in span_processors:
            sdk_provider.add_span_processor(processor)
    elif choice != "none":
        span_exporter, metric_exporter = _exporters(choice, endpoint)
        if offload is None:
            offload = _flag("MOOT_OTEL_OFFLOAD", default=True)
        if offload:
            from ._lean import LeanTracerProvider, sampler_from_env
            from ._offload import ProcessSpanProcessor

            span_exporter.shutdown()  # the child builds its own from the same settings
            sampler = sampler_from_env() if _lean_wanted(lean) else None
            if sampler is not None:
                processor = ProcessSpanProcessor(
                    choice, endpoint=endpoint, resource=dict(resource.attributes)
                )
                tracer_provider = LeanTracerProvider(processor, sampler)
            else:
                sdk_provider.add_span_processor(ProcessSpanProcessor(choice, endpoint=endpoint))
        else:
            sdk_provider.add_span_processor(BatchSpanProcessor(span_exporter))
        if metric_readers is None:
            readers.append(
                PeriodicExportingMetricReader(
                    metric_exporter, export_interval_millis=metrics_interval_ms
                )
            )
    meter_provider = MeterProvider(resource=resource, metric_readers=readers) if readers else None
    trace.set_tracer_provider(tracer_provider)
    if meter_provider is not None:
        metrics.set_meter_provider(meter_provider)
    if capture_content is not None:
        CONTENT.on = capture_content
    SWITCH.refresh()
    return Telemetry(tracer_provider=tracer_provider, meter_provider=meter_provider)


def _flag(name: str, *, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() not in ("0", "false", "")


def _lean_wanted(lean: bool | None) -> bool:
    return _flag("MOOT_OTEL_LEAN", default=False) if lean is None else lean


def _exporters(choice: str, endpoint: str | None) -> tuple[Any, Any]:
    if choice == "console":
        from opentelemetry.sdk.metrics.export import ConsoleMetricExporter
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter(), ConsoleMetricExporter()
    try:
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    except ImportError as exc:  # pragma: no cover - the dev install has the exporter
        raise _config_error(
            "the OTLP exporter is missing: pip install 'moot[otel]'", setting="exporter"
        ) from exc
    if endpoint is None:
        return OTLPSpanExporter(), OTLPMetricExporter()
    base = endpoint.rstrip("/")
    return (
        OTLPSpanExporter(endpoint=f"{base}/v1/traces"),
        OTLPMetricExporter(endpoint=f"{base}/v1/metrics"),
    )


def configure_from_env(service_name: str | None = None) -> Telemetry | None:
    """`configure()` when the environment asks for an exporter (`OTEL_TRACES_EXPORTER` other
    than `none`, or an `OTEL_EXPORTER_OTLP_*ENDPOINT`); None, and nothing installed, otherwise.
    `moot worker` calls it, so workers export where the client does.

    Raises:
        ObservabilityConfigError: as `configure` says.
    """
    exporter = os.environ.get("OTEL_TRACES_EXPORTER", "").strip()
    endpoint = any(
        os.environ.get(name)
        for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    )
    if exporter == "none" or not (exporter or endpoint):
        return None
    if os.environ.get("OTEL_SERVICE_NAME"):
        service_name = None  # the SDK's resource reads it
    return configure(service_name=service_name)


def _config_error(message: str, *, setting: str | None = None) -> Exception:
    """The typed error, imported late: it lives in moot's error tree above this room."""
    from ._errors import ObservabilityConfigError

    return ObservabilityConfigError(message, setting=setting)
