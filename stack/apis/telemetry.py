"""Telemetry: log events (logs, metrics, span boundaries) and query traces and spans."""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Annotated, Any, Literal, Protocol, Union, runtime_checkable

from pydantic import BaseModel, Field

from ._webmethod import webmethod


class SpanStatus(str, Enum):
    ok = "ok"
    error = "error"


class Span(BaseModel):
    span_id: str
    trace_id: str
    parent_span_id: str | None = None
    name: str
    start_time: datetime
    end_time: datetime | None = None
    attributes: dict[str, Any] | None = None


class SpanWithStatus(Span):
    status: SpanStatus | None = None


class Trace(BaseModel):
    trace_id: str
    root_span_id: str
    start_time: datetime
    end_time: datetime | None = None


class LogSeverity(str, Enum):
    verbose = "verbose"
    debug = "debug"
    info = "info"
    warn = "warn"
    error = "error"
    critical = "critical"


class _EventCommon(BaseModel):
    trace_id: str
    span_id: str
    timestamp: datetime
    attributes: dict[str, Any] | None = None


class UnstructuredLogEvent(_EventCommon):
    type: Literal["unstructured_log"] = "unstructured_log"
    message: str
    severity: LogSeverity


class MetricEvent(_EventCommon):
    type: Literal["metric"] = "metric"
    metric: str
    # int first so integer counters stay integers through a round trip.
    value: int | float
    unit: str


class SpanStartPayload(BaseModel):
    type: Literal["span_start"] = "span_start"
    name: str
    parent_span_id: str | None = None


class SpanEndPayload(BaseModel):
    type: Literal["span_end"] = "span_end"
    status: SpanStatus


StructuredLogPayload = Annotated[
    Union[SpanStartPayload, SpanEndPayload], Field(discriminator="type")
]


class StructuredLogEvent(_EventCommon):
    type: Literal["structured_log"] = "structured_log"
    payload: StructuredLogPayload


Event = Annotated[
    Union[UnstructuredLogEvent, MetricEvent, StructuredLogEvent], Field(discriminator="type")
]


class QueryConditionOp(str, Enum):
    eq = "eq"
    ne = "ne"
    gt = "gt"
    lt = "lt"


class QueryCondition(BaseModel):
    """Filter on one attribute: ``attributes[key] <op> value``."""

    key: str
    op: QueryConditionOp
    value: Any


class QueryTracesResponse(BaseModel):
    data: list[Trace]


class QuerySpansResponse(BaseModel):
    data: list[Span]


class QuerySpanTreeResponse(BaseModel):
    """The spans under a root span, keyed by span_id."""

    data: dict[str, SpanWithStatus]


@runtime_checkable
class Telemetry(Protocol):
    @webmethod(route="/v1/telemetry/events", method="POST")
    async def log_event(self, event: Event, ttl_seconds: int) -> None: ...

    @webmethod(route="/v1/telemetry/traces", method="GET")
    async def query_traces(
        self,
        attribute_filters: list[QueryCondition] | None = None,
        limit: int | None = 100,
        offset: int | None = 0,
        order_by: list[str] | None = None,
    ) -> QueryTracesResponse: ...

    @webmethod(route="/v1/telemetry/traces/{trace_id}", method="GET")
    async def get_trace(self, trace_id: str) -> Trace: ...

    @webmethod(route="/v1/telemetry/traces/{trace_id}/spans/{span_id}", method="GET")
    async def get_span(self, trace_id: str, span_id: str) -> Span: ...

    @webmethod(route="/v1/telemetry/spans/{span_id}/tree", method="GET")
    async def get_span_tree(
        self,
        span_id: str,
        attributes_to_return: list[str] | None = None,
        max_depth: int | None = None,
    ) -> QuerySpanTreeResponse: ...

    @webmethod(route="/v1/telemetry/spans", method="GET")
    async def query_spans(
        self,
        attribute_filters: list[QueryCondition],
        attributes_to_return: list[str],
        max_depth: int | None = None,
    ) -> QuerySpansResponse: ...

    @webmethod(route="/v1/telemetry/spans/export", method="POST")
    async def save_spans_to_dataset(
        self,
        attribute_filters: list[QueryCondition],
        attributes_to_save: list[str],
        dataset_id: str,
        max_depth: int | None = None,
    ) -> None: ...


PROTOCOL = Telemetry
