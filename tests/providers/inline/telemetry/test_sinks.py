"""The span store sink: a batch's spans become a row per trace, read back span by span; written
by the writer process or in-process, on SQLite and PostgreSQL."""

from __future__ import annotations

import math

import pytest

from providers.inline.telemetry.meta_reference.sinks import SpanStoreSink
from providers.inline.telemetry.meta_reference.span_writer import SpanWriterProcess
from stack.storage import sqlstore_from_config
from stack.tracing import SpanTuple


def _span(trace_id, span_id, parent, name, start, end, attributes, root=False):
    # as the collector hands spans over: FinishedSpan's fields in a plain tuple
    return (trace_id, span_id, parent, name, start, end, "ok", root, attributes, None, None)


@pytest.fixture(params=["process", "thread"])
async def sink(request, store_config):
    writer = SpanWriterProcess(store_config.model_dump(mode="json")) if request.param == "process" else None
    sink = SpanStoreSink(await sqlstore_from_config(store_config), writer=writer)
    await sink.initialize()
    yield sink
    await sink.close()


async def test_a_batch_of_interleaved_traces_reads_back_per_trace(sink):
    a, b = "a" * 32, "b" * 32
    await sink.export([
        _span(a, "a1", "a0", "provider", 20, 30, {"gen_ai.usage.input_tokens": 5, "ok": True}),
        _span(b, "b1", "b0", "provider", 21, 31, {"gen_ai.request.model": "m", "none": None}),
        _span(b, "b0", None, "POST /v1/chat/completions", 11, 41, {"http.response.status_code": 200}, root=True),
        _span(a, "a0", None, "POST /v1/completions", 10, 40, {"http.response.status_code": 404}, root=True),
    ], [])
    await sink.sync()  # as a read through the API does: the writer process's backlog written
    traces = await sink.traces(None, [("start_ns", "asc")], 10, 0)
    assert traces == [{"trace_id": a, "root_span_id": "a0", "start_ns": 10, "end_ns": 40},
                      {"trace_id": b, "root_span_id": "b0", "start_ns": 11, "end_ns": 41}]
    spans = await sink.trace(b)
    assert [(s["span_id"], s["parent_span_id"], s["root"], s["attributes"]) for s in spans] == [
        ("b0", None, True, {"http.response.status_code": 200}),
        ("b1", "b0", False, {"gen_ai.request.model": "m", "none": None})]
    assert await sink.trace_of("a1") == a


@pytest.mark.parametrize("attributes", [
    {"score": math.nan, "high": math.inf, "low": -math.inf},  # the standard library's NaN / Infinity
    {"nested": {"list": [1, 2.5, None], "ü": "😀"}},
    {"big": 2**70, "float": 0.25},
])
async def test_attributes_orjson_cannot_write_as_json_does_keep_their_values(sink, store_config, attributes):
    await sink.export([_span("c" * 32, "c0", None, "span", 1, 2, attributes, root=True)], [])
    await sink.sync()
    [span] = await sink.trace("c" * 32)
    read = span["attributes"]
    if store_config.type == "postgres" and "score" in attributes:
        # jsonb has no NaN or infinity: their names, rather than a refused batch
        assert read == {"score": "NaN", "high": "Infinity", "low": "-Infinity"}
        return
    assert read.keys() == attributes.keys()
    for key, value in attributes.items():
        assert read[key] == value or (math.isnan(value) and math.isnan(read[key]))
