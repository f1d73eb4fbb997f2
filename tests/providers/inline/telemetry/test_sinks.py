"""The span store sink: a batch's spans become a row per trace, read back span by span; written
by the writer process or in-process, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import math
import time

import pytest

from providers.inline.telemetry.meta_reference.chunk_table import CHUNK_COLUMN_NAMES, chunk_rows, encoded_chunk_rows
from providers.inline.telemetry.meta_reference.sinks import SpanStoreSink
from providers.inline.telemetry.meta_reference.span_writer import SpanWriterProcess
from stack import _spancore
from stack.storage import JsonText, sqlstore_from_config
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


def _rows_both_ways(spans, ttl_ns, monkeypatch):
    """The rows of ``spans`` made in C from their chunk, and by the Python path, at one fixed now."""
    monkeypatch.setattr(time, "time_ns", lambda: 1_000_000)
    made_in_c = _spancore.chunk_rows(_spancore.encode(spans), None if ttl_ns is None else 1_000_000 + ttl_ns, JsonText)
    return _named(made_in_c), _named(chunk_rows(spans, ttl_ns))


def _named(rows):
    """Row tuples (values in CHUNK_COLUMN_NAMES' order) by column name."""
    assert all(type(row) is tuple and len(row) == len(CHUNK_COLUMN_NAMES) for row in rows)
    return [dict(zip(CHUNK_COLUMN_NAMES, row)) for row in rows]


def _as_read(rows):
    # the JSON text as a reader parses it (orjson and the C writer may spell a float differently)
    return [{**row, "spans": json.loads(row["spans"].text)} for row in rows]


def _typed(value):
    return repr(value)  # 1 and 1.0 and True differ


_UNUSUAL = {
    "quote\"back\\slash": "line\nbreak\ttab\x01\x1f\x7f", "ü 😀": "\u2028 mixed ü",
    "long": "eight by" * 3 + "\x00" + "ü" * 9 + '"' + "x" * 15 + "\\" + "\x1f" * 8 + "end",
    "f": 100.0, "tiny": 1e-05, "neg": -0.0, "huge": 1e300, "i": -(2**63), "max": 2**63 - 1, "t": True, "n": None,
}


@pytest.mark.parametrize("ttl_ns", [None, 5_000])
@pytest.mark.parametrize("expires", [(None, None), (9_000_000, None), (9_000_000, 0), (9_000_000, 2_000_000)])
def test_rows_made_in_c_are_the_python_paths_rows(monkeypatch, ttl_ns, expires):
    a, b, c = "a" * 32, "b" * 32, "c" * 32
    spans = [
        _span(a, "a1", "a0", "provider", 20, 30, {"gen_ai.usage.input_tokens": 5, "ok": True}),
        _span(b, "b1", "b0", "näme \"quoted\"", 21, 31, _UNUSUAL),
        _span(b, "b0", None, "POST /v1/chat/completions", 11, 41, {"http.response.status_code": 200}, root=True),
        _span(c, "c2", "c1", "no root here", 5, 8, {}),
        _span(c, "c1", "c0", "nor here", 3, 9, {"x": 1.5}),
        _span(a, "a0", None, "POST /v1/completions", 10, 40, {"http.response.status_code": 404}, root=True),
    ]
    spans = [s[:10] + (expires[i % 2],) for i, s in enumerate(spans)]
    made_in_c, python = _rows_both_ways(spans, ttl_ns, monkeypatch)
    assert all(type(row["spans"]) is JsonText for row in made_in_c)
    assert [[_typed(v) for v in row.values()] for row in _as_read(made_in_c)] == \
        [[_typed(v) for v in row.values()] for row in _as_read(python)]
    assert [row["trace_id"] for row in made_in_c] == [a, b, c]


def test_strings_that_come_again_in_a_chunk_are_written_as_the_first_time(monkeypatch):
    # the same objects in several spans: the chunk holds them once and refers back to them, and
    # the C rows know after the first time whether their JSON needs escaping
    attributes = {"quote\"key": "line\nbreak", "plain.key": "plain value", "ü": "ü"}
    spans = [_span("f" * 32, f"f{n}", None if n == 0 else "f0", "näme \"x\"", n, n + 1, dict(attributes), root=n == 0)
             for n in range(4)]
    made_in_c, python = _rows_both_ways(spans, None, monkeypatch)
    assert _as_read(made_in_c) == _as_read(python)
    assert [span[7] for span in _as_read(made_in_c)[0]["spans"]] == [attributes] * 4


@pytest.mark.parametrize("attributes", [
    {"score": math.nan}, {"nested": {"list": [1]}}, {"list": [1, 2]}, {"big": 2**70}, {"pair": (1, 2)},
])
def test_a_chunk_with_a_value_only_python_writes_right_takes_the_python_path(monkeypatch, attributes):
    spans = [_span("d" * 32, "d0", None, "span", 1, 2, attributes, root=True)]
    assert _spancore.chunk_rows(_spancore.encode(spans), None, JsonText) is None
    [row] = _named(encoded_chunk_rows(_spancore.encode(spans), None))
    assert row["trace_id"] == "d" * 32 and row["root"] is True


def test_a_damaged_chunk_is_refused():
    chunk = _spancore.encode([_span("e" * 32, "e0", None, "span", 1, 2, {"k": "v"}, root=True)])
    with pytest.raises(ValueError, match="span chunk"):
        _spancore.chunk_rows(chunk[:-3], None, JsonText)
    with pytest.raises(ValueError, match="PSB2"):
        _spancore.chunk_rows(b"nope" + chunk[4:], None, JsonText)


def test_a_cut_or_garbled_chunk_gives_rows_none_or_a_value_error_never_a_crash():
    spans = [_span("f" * 32, f"f{i}", None if i == 0 else "f0", f"span {i}", i, i + 1,
                   {"k": "v", "n": i, "x": 0.5, "list": [i]} if i == 3 else {"k": "v", "n": i}, root=i == 0)
             for i in range(6)]
    chunk = _spancore.encode(spans)
    variants = [chunk[:cut] for cut in range(len(chunk))]
    variants += [chunk[:at] + bytes([chunk[at] ^ flip]) + chunk[at + 1:]
                 for at in range(8, len(chunk)) for flip in (0x01, 0x80, 0xff)]
    for variant in variants:
        try:
            rows = _spancore.chunk_rows(variant, None, JsonText)
        except ValueError:
            continue
        assert rows is None or all(json.loads(row[-1].text) for row in rows)
