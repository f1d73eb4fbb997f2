"""Where finished spans go: the span store (SQL), the console and OpenTelemetry (OTLP/HTTP)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import sys
import uuid
from typing import Any

from stack.storage import ColumnType, SqlStore
from stack.tracing import EventRecord, SpanRecord

log = logging.getLogger(__name__)

SPAN_COLUMNS = {
    "trace_id": ColumnType.TEXT,
    "span_id": ColumnType.TEXT,
    "parent_span_id": ColumnType.TEXT,
    "name": ColumnType.TEXT,
    # epoch nanoseconds: cheaper to write than timestamps, and every span is written
    "start_ns": ColumnType.INTEGER,
    "end_ns": ColumnType.INTEGER,
    "attributes": ColumnType.JSON,
    "status": ColumnType.TEXT,
    "root": ColumnType.BOOLEAN,
    "events": ColumnType.JSON,  # the metrics recorded on the span
}
EVENT_COLUMNS = {
    "event_id": ColumnType.TEXT,
    "trace_id": ColumnType.TEXT,
    "span_id": ColumnType.TEXT,
    "timestamp": ColumnType.TIMESTAMP,
    "type": ColumnType.TEXT,
    "message": ColumnType.TEXT,
    "severity": ColumnType.TEXT,
    "metric": ColumnType.TEXT,
    "value": ColumnType.REAL,
    "unit": ColumnType.TEXT,
    "attributes": ColumnType.JSON,
}


def span_row(span: SpanRecord) -> dict[str, Any]:
    events = [{**event_fields(e), "timestamp": e.timestamp.isoformat()} for e in span.events] if span.events else None
    return {"trace_id": span.trace_id, "span_id": span.span_id, "parent_span_id": span.parent_span_id,
            "name": span.name, "start_ns": span.start_ns, "end_ns": span.end_ns,
            "attributes": span.attributes, "status": span.status, "root": span.root, "events": events}


def event_fields(event: EventRecord) -> dict[str, Any]:
    fields = {"type": event.type, "timestamp": event.timestamp, "message": event.message, "severity": event.severity,
              "metric": event.metric, "value": event.value, "unit": event.unit, "attributes": event.attributes}
    return {k: v for k, v in fields.items() if v is not None}


class SpanStoreSink:
    """Spans and events in two tables of a SQL store; one transaction per batch."""

    def __init__(self, store: SqlStore) -> None:
        self.store = store

    async def initialize(self) -> None:
        await self.store.create_table("spans", SPAN_COLUMNS, primary_key=("trace_id", "span_id"))
        await self.store.create_table("events", EVENT_COLUMNS, primary_key="event_id")

    async def export(self, spans: list[SpanRecord], events: list[EventRecord]) -> None:
        """A span's own metrics go in its row (one row a span: a row per metric would double the
        writes of every inference call); posted logs and metrics in the events table."""
        await self.store.upsert_many("spans", [span_row(s) for s in spans], ("trace_id", "span_id"))
        await self.store.upsert_many("events", [
            {"event_id": uuid.uuid4().hex, "trace_id": e.trace_id, "span_id": e.span_id,
             **dict.fromkeys(EVENT_COLUMNS.keys() - {"event_id", "trace_id", "span_id"}), **event_fields(e)}
            for e in events
        ], ("event_id",))

    async def close(self) -> None:
        await self.store.close()


class ConsoleSink:
    """One line per span and event on stderr, written by a worker thread."""

    async def export(self, spans: list[SpanRecord], events: list[EventRecord]) -> None:
        lines = [
            f"[trace {s.trace_id} span {s.span_id}] {s.name} {(s.end_ns - s.start_ns) / 1e6:.2f} ms "
            f"{s.status} {json.dumps(s.attributes, default=str)}"
            for s in spans
        ]
        own = [e for s in spans for e in s.events or ()]
        lines += [
            f"[trace {e.trace_id} span {e.span_id}] {e.type} "
            + (f"{e.metric}={e.value} {e.unit}" if e.type == "metric" else f"{e.severity}: {e.message}")
            for e in [*own, *events]
        ]
        if lines:
            await asyncio.to_thread(_write, "\n".join(lines) + "\n")

    async def close(self) -> None:
        pass


def _write(text: str) -> None:
    sys.stderr.write(text)
    sys.stderr.flush()


class OtelSink:
    """Spans to an OpenTelemetry collector over OTLP/HTTP, batched and sent by the SDK's own thread."""

    def __init__(self, endpoint: str, service_name: str, headers: dict[str, str]) -> None:
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
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

    async def export(self, spans: list[SpanRecord], events: list[EventRecord]) -> None:
        for span in spans:
            self.processor.on_end(self._readable(span))

    def _readable(self, span: SpanRecord) -> Any:
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
            events=[Event(e.metric, {"value": e.value, "unit": e.unit, **{k: _otel_value(v) for k, v in e.attributes.items()
                                                                         if v is not None}},
                          int(e.timestamp.timestamp() * 1e9)) for e in span.events or ()],
            start_time=span.start_ns,
            end_time=span.end_ns,
        )

    async def close(self) -> None:
        await asyncio.to_thread(self.processor.shutdown)


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
