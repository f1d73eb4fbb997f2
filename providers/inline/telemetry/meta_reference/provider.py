"""The Telemetry API over the span store; the collector that feeds the sinks."""

from __future__ import annotations

import collections
import logging
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from stack import tracing
from stack.apis._content import URL
from stack.apis._types import JsonType, StringType
from stack.apis.telemetry import (
    Event,
    MetricEvent,
    QueryCondition,
    QueryConditionOp,
    QuerySpansResponse,
    QuerySpanTreeResponse,
    QueryTracesResponse,
    Span,
    SpanStartPayload,
    SpanWithStatus,
    StructuredLogEvent,
    Trace,
)
from stack.errors import BadRequestError, NotFoundError, NotSupportedError
from stack.registry import ProviderContext
from stack.storage import (
    JsonAll,
    JsonAny,
    JsonPredicate,
    JsonTest,
    SqliteStoreConfig,
    StoreConfig,
    sqlstore_from_config,
)

from providers.utils.datasetio.rows import empty_csv_url

from .chunk_table import ATTRIBUTES, NAME, STATUS
from .config import MetaReferenceTelemetryConfig, TelemetrySink
from .otel import OtelSink
from .sinks import ConsoleSink, SpanStoreSink
from .span_writer import SpanWriterProcess

log = logging.getLogger(__name__)

MAX_LIMIT = 1000
TRACE_ORDER = {"trace_id": "trace_id", "root_span_id": "root_span_id", "start_time": "start_ns", "end_time": "end_ns"}
#: span_start events waiting for their span_end when no span store keeps them
MAX_OPEN_SPANS = 10_000
SPAN_COLUMNS_SAVED = ("trace_id", "span_id", "parent_span_id", "name", "start_time", "end_time")


class MetaReferenceTelemetry:
    def __init__(self, config: MetaReferenceTelemetryConfig, context: ProviderContext) -> None:
        self.config = config
        self.context = context
        self.datasetio = context.deps.get("datasetio")
        self.datasets = context.deps.get("datasets")
        self.store: SpanStoreSink | None = None
        self.collector: tracing.Collector | None = None
        self._open: collections.OrderedDict[tuple[str, str], tracing.SpanRecord] = collections.OrderedDict()

    async def initialize(self) -> None:
        sinks: list[Any] = []
        wanted = dict.fromkeys(self.config.sinks)
        if TelemetrySink.sqlite in wanted:
            store_config = self.config.store or SqliteStoreConfig(db_path=self.config.sqlite_db_path)
            default_path = self.context.data_dir / "trace_store.db"
            self.store = SpanStoreSink(await sqlstore_from_config(store_config, default_path=default_path),
                                       ttl_seconds=self.config.ttl_seconds, prune_interval=self.config.prune_interval,
                                       writer=self._span_writer(store_config, default_path),
                                       read_wait=self.config.span_writer_read_wait)
            await self.store.initialize()
            sinks.append(self.store)
        if TelemetrySink.console in wanted:
            sinks.append(ConsoleSink())
        if TelemetrySink.otel in wanted:
            sinks.append(OtelSink(self.config.otel_endpoint, self.config.service_name, self.config.otel_headers,
                                 self.config.otel_metrics_endpoint))
        self.collector = tracing.Collector(sinks, max_buffer=self.config.max_buffer,
                                           interval=self.config.flush_interval, sample_rate=self.config.sample_rate)
        self.collector.start()
        tracing.install(self.collector)

    def _span_writer(self, store_config: StoreConfig, default_path: Path) -> SpanWriterProcess | None:
        """The writer process of ``span_writer: process``, opening the same store as this process's."""
        if self.config.span_writer != "process":
            return None
        if isinstance(store_config, SqliteStoreConfig):
            path = store_config.resolve_path(default_path)
            if path is None:  # ':memory:' exists in this process alone
                return None
            store_config = store_config.model_copy(update={"db_path": str(path)})
        return SpanWriterProcess(store_config.model_dump(mode="json"),
                                 backlog_bytes=self.config.span_writer_backlog_mb << 20,
                                 fold_bytes=self.config.span_log_mb << 20)

    async def shutdown(self) -> None:
        tracing.install(None)
        if self.collector is not None:
            await self.collector.close()
            self.collector = None

    # -- events ----------------------------------------------------------------------------

    async def log_event(self, event: Event, ttl_seconds: int) -> None:
        if ttl_seconds < 0:
            raise BadRequestError("must be 0 or more", field="ttl_seconds")
        for name in ("trace_id", "span_id"):
            value = getattr(event, name)
            if not value or len(value) > 128:
                raise BadRequestError("must be 1 to 128 characters", field=f"event.{name}")
        # ttl_seconds counts from now (when the store got it); 0: kept like the request traces
        expires = time.time_ns() + ttl_seconds * 1_000_000_000 if ttl_seconds else None
        if isinstance(event, StructuredLogEvent):
            await self._span_event(event, expires)
            return
        record = tracing.EventRecord(event.trace_id, event.span_id, _ns(event.timestamp), event.type,
                                     event.attributes or {}, expires_ns=expires)
        if isinstance(event, MetricEvent):
            record.metric, record.value, record.unit = event.metric, event.value, event.unit
        else:
            record.message, record.severity = event.message, event.severity.value
        self.collector.add_event(record)

    async def _span_event(self, event: StructuredLogEvent, expires: int | None) -> None:
        """span_start opens a span (kept in the store, so queries see it running); span_end finishes it."""
        key = (event.trace_id, event.span_id)
        ns = _ns(event.timestamp)
        if isinstance(event.payload, SpanStartPayload):
            record = tracing.SpanRecord.new(event.trace_id, event.span_id, event.payload.parent_span_id,
                                        event.payload.name, ns, attributes=dict(event.attributes or {}),
                                        root=event.payload.parent_span_id is None, expires_ns=expires)
            if self.store is not None:
                await self.store.write_here([record.finished()])
            else:
                self._open[key] = record
                while len(self._open) > MAX_OPEN_SPANS:
                    self._open.popitem(last=False)
            return
        record = self._open.pop(key, None) or await self._stored_record(*key)
        if record is None:
            raise BadRequestError(f"span {event.span_id!r} of trace {event.trace_id!r} was never started "
                                  "(log its span_start first)", field="event.span_id")
        record.end_ns = max(ns, record.start_ns)
        record.expires_ns = expires
        record.status = event.payload.status.value
        record.attributes.update(event.attributes or {})
        self.collector.add_span(record)

    async def _stored_record(self, trace_id: str, span_id: str) -> tracing.SpanRecord | None:
        if self.store is None:
            return None
        row = next((s for s in await self.store.trace(trace_id) if s["span_id"] == span_id), None)
        if row is None:
            return None
        return tracing.SpanRecord.new(trace_id, span_id, row["parent_span_id"], row["name"], row["start_ns"],
                                  attributes=row["attributes"] or {}, root=row["root"])

    # -- queries -----------------------------------------------------------------------------

    async def _flushed_store(self) -> SpanStoreSink:
        """The span store, once this server's buffered spans reached it."""
        if self.store is None:
            raise NotSupportedError("trace and span queries read the span store: add the sqlite sink "
                                    "to the telemetry provider's sinks")
        await self.collector.flush()
        await self.store.sync()  # the writer process's backlog written (see SpanWriterProcess.sync)
        return self.store

    async def _read(self, method: str, *args: Any) -> list[dict[str, Any]]:
        """Spans from the store's ``method`` (with datetimes)."""
        rows = await getattr(await self._flushed_store(), method)(*args)
        for row in rows:
            row["start_time"] = tracing.to_datetime(row["start_ns"])
            row["end_time"] = None if row["end_ns"] is None else tracing.to_datetime(row["end_ns"])
        return rows

    async def query_traces(self, attribute_filters: list[QueryCondition] | None = None, limit: int | None = 100,
                           offset: int | None = 0, order_by: list[str] | None = None) -> QueryTracesResponse:
        limit = MAX_LIMIT if limit is None else limit
        offset = offset or 0
        if not 0 <= limit <= MAX_LIMIT:
            raise BadRequestError(f"must be from 0 to {MAX_LIMIT}", field="limit")
        if offset < 0:
            raise BadRequestError("must be 0 or more", field="offset")
        order = _trace_order(order_by)
        predicate = _predicate(_conditions(attribute_filters, "attribute_filters"))
        rows = await (await self._flushed_store()).traces(predicate, order, limit, offset)
        return QueryTracesResponse(data=[Trace(
            trace_id=row["trace_id"], root_span_id=row["root_span_id"], start_time=tracing.to_datetime(row["start_ns"]),
            end_time=None if row["end_ns"] is None else tracing.to_datetime(row["end_ns"])) for row in rows])

    async def get_trace(self, trace_id: str) -> Trace:
        roots = [row for row in await self._read("trace", trace_id) if row["root"]]
        if not roots:
            raise NotFoundError("Trace", trace_id, [])
        return _trace(roots[0])

    async def get_span(self, trace_id: str, span_id: str) -> Span:
        rows = [row for row in await self._read("trace", trace_id) if row["span_id"] == span_id]
        if not rows:
            raise NotFoundError("Span", span_id, [], message=f"trace {trace_id!r} has no span {span_id!r}")
        return Span(**_span_fields(rows[0]))

    async def get_span_tree(self, span_id: str, attributes_to_return: list[str] | None = None,
                            max_depth: int | None = None) -> QuerySpanTreeResponse:
        _check_depth(max_depth)
        trace_id = await (await self._flushed_store()).trace_of(span_id)
        if trace_id is None:
            raise NotFoundError("Span", span_id, [])
        spans = await self._read("trace", trace_id)
        tree = _subtree(spans, span_id, max_depth)
        return QuerySpanTreeResponse(data={
            row["span_id"]: SpanWithStatus(**_span_fields(row, attributes_to_return), status=row["status"])
            for row in tree
        })

    async def query_spans(self, attribute_filters: list[QueryCondition], attributes_to_return: list[str],
                          max_depth: int | None = None) -> QuerySpansResponse:
        """The spans of every trace that has a span matching all ``attribute_filters``, from each trace's
        root down to ``max_depth``; with ``attributes_to_return``, those that carry one of them, with only those."""
        _check_depth(max_depth)
        predicate = _predicate(_conditions(attribute_filters, "attribute_filters"))
        rows = await self._read("matching_traces", predicate)  # the store filters: only those traces come back
        by_trace: dict[str, list[dict[str, Any]]] = collections.defaultdict(list)
        for row in rows:
            by_trace[row["trace_id"]].append(row)
        spans = []
        for trace_spans in by_trace.values():
            for root in [row for row in trace_spans if row["root"]][:1]:
                for row in _subtree(trace_spans, root["span_id"], max_depth):
                    if attributes_to_return and not any(k in (row["attributes"] or {}) for k in attributes_to_return):
                        continue
                    spans.append(Span(**_span_fields(row, attributes_to_return)))
        return QuerySpansResponse(data=spans)

    async def save_spans_to_dataset(self, attribute_filters: list[QueryCondition], attributes_to_save: list[str],
                                    dataset_id: str, max_depth: int | None = None) -> None:
        """Append the spans ``query_spans`` finds to ``dataset_id`` (registered here when it does not
        exist yet): one row each, its ids, name and times plus a column per attribute saved."""
        if self.datasetio is None or self.datasets is None:
            raise NotSupportedError("saving spans needs the datasetio API, which this stack does not serve")
        if not dataset_id:
            raise BadRequestError("name the dataset to save the spans to", field="dataset_id")
        clashes = [a for a in attributes_to_save if a in SPAN_COLUMNS_SAVED]
        if clashes:
            raise BadRequestError(f"{clashes[0]!r} is a column of every saved span; save attributes by "
                                  "other names", field="attributes_to_save")
        spans = (await self.query_spans(attribute_filters, attributes_to_save, max_depth)).data
        try:
            await self.datasets.get_dataset(dataset_id)
        except NotFoundError:
            schema = {**{c: StringType() for c in SPAN_COLUMNS_SAVED}, **{a: JsonType() for a in attributes_to_save}}
            await self.datasets.register_dataset(
                dataset_id=dataset_id, dataset_schema=schema, url=URL(uri=empty_csv_url(list(schema))),
                metadata={"source": "telemetry", "attributes": list(attributes_to_save)},
            )
        rows = [{
            "trace_id": s.trace_id, "span_id": s.span_id, "parent_span_id": s.parent_span_id, "name": s.name,
            "start_time": s.start_time.isoformat(), "end_time": s.end_time.isoformat() if s.end_time else None,
            **{a: (s.attributes or {}).get(a) for a in attributes_to_save},
        } for s in spans]
        if rows:
            await self.datasetio.append_rows(dataset_id=dataset_id, rows=rows)


def _ns(moment: datetime) -> int:
    if moment.tzinfo is None:  # a client's naive time is taken as UTC
        moment = moment.replace(tzinfo=timezone.utc)
    return int(moment.timestamp() * 1e9)


def _check_depth(max_depth: int | None) -> None:
    if max_depth is not None and max_depth < 0:
        raise BadRequestError("must be 0 or more", field="max_depth")


def _trace_order(order_by: list[str] | None) -> list[tuple[str, str]]:
    """``order_by`` fields ("-" first: descending) as store ordering; newest first when unset."""
    order = []
    for i, item in enumerate(order_by or ["-start_time"]):
        name = item[1:] if item.startswith("-") else item
        if name not in TRACE_ORDER:
            raise BadRequestError(f"cannot order traces by {name!r}; known: {', '.join(TRACE_ORDER)} "
                                  "(prefix '-' for descending)", field=f"order_by[{i}]")
        order.append((TRACE_ORDER[name], "desc" if item.startswith("-") else "asc"))
    return order


def _conditions(conditions: list[QueryCondition] | None, field: str) -> list[QueryCondition]:
    for i, condition in enumerate(conditions or []):
        if not condition.key:
            raise BadRequestError("name the attribute to filter on", field=f"{field}[{i}].key")
        if condition.op in (QueryConditionOp.gt, QueryConditionOp.lt) and not isinstance(condition.value, (int, float, str)):
            raise BadRequestError("gt and lt compare numbers or strings", field=f"{field}[{i}].value")
        if not isinstance(condition.value, (str, int, float, bool, type(None))):
            raise BadRequestError("eq and ne compare a string, number, boolean or null",
                                  field=f"{field}[{i}].value")
    return list(conditions or [])


def _predicate(conditions: list[QueryCondition]) -> JsonPredicate | None:
    """The conditions as a test on one span of a chunk (evaluated by the store's SQL): all hold on its
    attributes; ``name`` and ``status`` are the span's own unless an attribute has that name."""
    if not conditions:
        return None
    tests = []
    for c in conditions:
        on_attribute = JsonTest((ATTRIBUTES, c.key), c.op.value, c.value)
        field = {"name": NAME, "status": STATUS}.get(c.key)
        if field is None:
            tests.append(on_attribute)
        else:
            tests.append(JsonAny((
                JsonAll((JsonTest((ATTRIBUTES, c.key), "present"), on_attribute)),
                JsonAll((JsonTest((ATTRIBUTES, c.key), "absent"), JsonTest((field,), c.op.value, c.value))),
            )))
    return JsonAll(tuple(tests))


def _subtree(spans: list[dict[str, Any]], span_id: str, max_depth: int | None) -> list[dict[str, Any]]:
    """The span ``span_id`` and its descendants down to ``max_depth`` levels below it (None: all)."""
    children: dict[str | None, list[dict[str, Any]]] = collections.defaultdict(list)
    top = None
    for row in spans:
        children[row["parent_span_id"]].append(row)
        if row["span_id"] == span_id:
            top = row
    if top is None:
        return []
    out, level, depth, seen = [top], [top], 0, {span_id}
    while level and (max_depth is None or depth < max_depth):
        # seen: posted spans may name each other as parents; each is listed once
        level = [child for row in level for child in children.get(row["span_id"], ()) if child["span_id"] not in seen]
        seen.update(row["span_id"] for row in level)
        out += level
        depth += 1
    return out


def _span_fields(row: dict[str, Any], attributes: list[str] | None = None) -> dict[str, Any]:
    values = row["attributes"] or {}
    if attributes:
        values = {k: values[k] for k in attributes if k in values}
    return {"span_id": row["span_id"], "trace_id": row["trace_id"], "parent_span_id": row["parent_span_id"],
            "name": row["name"], "start_time": row["start_time"], "end_time": row["end_time"], "attributes": values}


def _trace(row: dict[str, Any]) -> Trace:
    return Trace(trace_id=row["trace_id"], root_span_id=row["span_id"], start_time=row["start_time"],
                 end_time=row["end_time"])
