"""Telemetry: the Event union, span payloads, and the query/export signatures."""

import inspect
from datetime import datetime, timezone

import pytest
from pydantic import TypeAdapter, ValidationError

from stack.apis.telemetry import (
    Event,
    LogSeverity,
    MetricEvent,
    QueryCondition,
    QueryConditionOp,
    QuerySpanTreeResponse,
    QueryTracesResponse,
    SpanEndPayload,
    SpanStartPayload,
    SpanStatus,
    StructuredLogEvent,
    Telemetry,
    UnstructuredLogEvent,
)

events = TypeAdapter(Event)
COMMON = {"trace_id": "t1", "span_id": "s1", "timestamp": "2025-01-20T10:00:00Z", "attributes": {"k": "v"}}

SAMPLES = [
    ({**COMMON, "type": "unstructured_log", "message": "hello", "severity": "warn"}, UnstructuredLogEvent),
    ({**COMMON, "type": "metric", "metric": "prompt_tokens", "value": 17, "unit": "tokens"}, MetricEvent),
    (
        {**COMMON, "type": "structured_log", "payload": {"type": "span_start", "name": "chat", "parent_span_id": "s0"}},
        StructuredLogEvent,
    ),
    ({**COMMON, "type": "structured_log", "payload": {"type": "span_end", "status": "error"}}, StructuredLogEvent),
]


@pytest.mark.parametrize("payload,cls", SAMPLES)
def test_each_event_parses_and_round_trips(payload, cls):
    event = events.validate_python(payload)
    assert type(event) is cls
    assert event.timestamp == datetime(2025, 1, 20, 10, tzinfo=timezone.utc)
    dumped = event.model_dump(mode="json")
    assert events.validate_python(dumped) == event
    assert {k: v for k, v in dumped.items() if k != "timestamp"} == {
        k: v for k, v in payload.items() if k != "timestamp"
    }


def test_structured_payload_members():
    start = events.validate_python(SAMPLES[2][0]).payload
    end = events.validate_python(SAMPLES[3][0]).payload
    assert isinstance(start, SpanStartPayload) and isinstance(end, SpanEndPayload)
    assert end.status is SpanStatus.error


def test_metric_value_keeps_int_and_float():
    as_int = events.validate_python(SAMPLES[1][0])
    as_float = events.validate_python({**SAMPLES[1][0], "value": 0.25})
    assert type(as_int.value) is int and type(as_float.value) is float


@pytest.mark.parametrize(
    "bad",
    [
        {**COMMON, "type": "trace", "message": "x", "severity": "info"},
        {**COMMON, "type": "unstructured_log", "message": "x", "severity": "loud"},
        {**COMMON, "type": "structured_log", "payload": {"type": "span_middle"}},
    ],
)
def test_bad_discriminators_and_enums_are_rejected(bad):
    with pytest.raises(ValidationError):
        events.validate_python(bad)


def test_log_event_body_requires_ttl(body_model):
    model = body_model(Telemetry.log_event)
    body = model.model_validate({"event": SAMPLES[0][0], "ttl_seconds": 604800})
    assert body.event.severity is LogSeverity.warn
    with pytest.raises(ValidationError, match="ttl_seconds"):
        model.model_validate({"event": SAMPLES[0][0]})


def test_query_condition_value_may_be_null():
    cond = QueryCondition.model_validate({"key": "session_id", "op": "ne", "value": None})
    assert cond.op is QueryConditionOp.ne
    with pytest.raises(ValidationError, match="value"):
        QueryCondition.model_validate({"key": "k", "op": "eq"})


def test_span_tree_and_traces_round_trip():
    tree = {
        "data": {
            "s1": {"span_id": "s1", "trace_id": "t1", "parent_span_id": None, "name": "root",
                   "start_time": "2025-01-20T10:00:00Z", "end_time": None, "attributes": None, "status": "ok"}
        }
    }
    parsed = QuerySpanTreeResponse.model_validate(tree)
    assert parsed.data["s1"].status is SpanStatus.ok
    assert QuerySpanTreeResponse.model_validate(parsed.model_dump(mode="json")) == parsed
    traces = QueryTracesResponse.model_validate(
        {"data": [{"trace_id": "t1", "root_span_id": "s1", "start_time": "2025-01-20T10:00:00Z"}]}
    )
    assert traces.data[0].end_time is None


def test_query_spans_requires_filters_and_attributes():
    params = inspect.signature(Telemetry.query_spans).parameters
    assert params["attribute_filters"].default is inspect.Parameter.empty
    assert params["attributes_to_return"].default is inspect.Parameter.empty
    assert params["max_depth"].default is None


def test_save_spans_body(body_model):
    model = body_model(Telemetry.save_spans_to_dataset)
    body = model.model_validate(
        {"attribute_filters": [{"key": "k", "op": "eq", "value": 1}], "attributes_to_save": ["input"],
         "dataset_id": "spans"}
    )
    assert body.attribute_filters[0].value == 1 and body.max_depth is None
