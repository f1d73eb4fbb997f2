"""The otel sink: spans, and MetricEvents as metrics, to an OpenTelemetry collector over OTLP/HTTP."""

from __future__ import annotations

import asyncio
import hashlib
import json
from typing import Any

from stack.tracing import EventRecord, FinishedSpan, SpanTuple, named_span, span_metrics

#: how often the SDK's reader sends the metrics it aggregated (and once more on shutdown)
METRICS_EXPORT_INTERVAL_MS = 10_000


class OtelSink:
    """Spans to an OpenTelemetry collector over OTLP/HTTP, batched and sent by the SDK's own thread;
    MetricEvents (the spans' and posted ones) recorded on one histogram per metric and unit, whose
    aggregates the SDK's reader sends to the collector's metrics endpoint."""

    def __init__(self, endpoint: str, service_name: str, headers: dict[str, str],
                 metrics_endpoint: str | None = None) -> None:
        try:
            from opentelemetry.exporter.otlp.proto.http.metric_exporter import (
                OTLPMetricExporter,
            )
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
                OTLPSpanExporter,
            )
            from opentelemetry.sdk.metrics import MeterProvider
            from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
            from opentelemetry.sdk.resources import Resource
            from opentelemetry.sdk.trace.export import BatchSpanProcessor
        except ImportError as exc:
            from stack.errors import ConfigError

            raise ConfigError(
                f"telemetry sink otel needs opentelemetry-sdk and opentelemetry-exporter-otlp-proto-http "
                f"(pip install 'polystack[telemetry]'): {exc}"
            ) from None
        self.resource = Resource.create({"service.name": service_name})
        self.processor = BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint, headers=headers or None))
        reader = PeriodicExportingMetricReader(
            OTLPMetricExporter(endpoint=metrics_endpoint or metrics_url(endpoint), headers=headers or None),
            export_interval_millis=METRICS_EXPORT_INTERVAL_MS)
        # a provider of our own, not the global one: a second stack in the process keeps its own
        self.meters = MeterProvider(resource=self.resource, metric_readers=[reader])
        self.meter = self.meters.get_meter("polystack")
        self._histograms: dict[tuple[str, str], Any] = {}

    async def export(self, spans: list[SpanTuple], events: list[EventRecord]) -> None:
        for span in map(named_span, spans):
            metrics = span_metrics(span)
            self.processor.on_end(self._readable(span, metrics))
            for metric, value, unit, _at, tags in metrics:
                self._record(metric, value, unit, tags)
        for event in events:
            if event.type == "metric" and event.metric:
                self._record(event.metric, event.value, event.unit or "", event.attributes)

    def _record(self, metric: str, value: Any, unit: str, tags: dict[str, Any]) -> None:
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            return
        histogram = self._histograms.get((metric, unit))
        if histogram is None:
            histogram = self._histograms[metric, unit] = self.meter.create_histogram(metric, unit=unit)
        histogram.record(value, {k: _otel_value(v) for k, v in tags.items() if v is not None})

    def _readable(self, span: FinishedSpan, metrics: list) -> Any:
        from opentelemetry.sdk.trace import Event, ReadableSpan
        from opentelemetry.trace import SpanContext, Status, StatusCode, TraceFlags

        def context(span_id: str) -> SpanContext:
            return SpanContext(_otel_id(span.trace_id, 128), _otel_id(span_id, 64), is_remote=False,
                               trace_flags=TraceFlags(TraceFlags.SAMPLED))

        return ReadableSpan(
            name=span.name,
            context=context(span.span_id),
            parent=context(span.parent_span_id) if span.parent_span_id else None,
            resource=self.resource,
            attributes={k: _otel_value(v) for k, v in span.attributes.items() if v is not None},
            status=Status(StatusCode.ERROR if span.status == "error" else StatusCode.OK),
            events=[Event(metric, {"value": value, "unit": unit, **{k: _otel_value(v) for k, v in tags.items()
                                                                     if v is not None}}, at)
                    for metric, value, unit, at, tags in metrics],
            start_time=span.start_ns,
            end_time=span.end_ns,
        )

    async def close(self) -> None:
        await asyncio.to_thread(self.processor.shutdown)
        await asyncio.to_thread(self.meters.shutdown)  # collects and sends the last metrics


def metrics_url(traces_url: str) -> str:
    """The collector's metrics endpoint beside its traces one (OTLP/HTTP: /v1/traces -> /v1/metrics)."""
    if traces_url.rstrip("/").endswith("/v1/traces"):
        return traces_url.rstrip("/")[: -len("/v1/traces")] + "/v1/metrics"
    return traces_url.rstrip("/") + "/v1/metrics"


def _otel_id(value: str, bits: int) -> int:
    """Our hex ids as they are; other ids (posted by clients) hashed to an id of ``bits`` bits."""
    if len(value) == bits // 4:
        try:
            return int(value, 16)
        except ValueError:
            pass
    return int.from_bytes(hashlib.sha256(value.encode()).digest()[: bits // 8], "big") or 1


def _otel_value(value: Any) -> Any:
    """OpenTelemetry attributes hold primitives (and lists of one primitive type); anything else as JSON."""
    if isinstance(value, (str, bool, int, float)):
        return value
    return json.dumps(value, default=str)
