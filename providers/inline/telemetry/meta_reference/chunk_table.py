"""The ``span_chunks`` table: its columns, and its rows made from a batch of spans (a row per trace
and batch). The span store sink writes and reads them (``sinks.py``); the span writer process
makes them from the batches it folds (``span_log.py``)."""

from __future__ import annotations

import itertools
import math
import operator
import time
from typing import Any, Callable

import orjson

from stack import _spancore
from stack.storage import ColumnType, JsonText
from stack.tracing import SpanTuple

#: one row per trace and batch: the spans of a request reach the sink together, and one row
#: for them costs a quarter of a row each (docs/performance.md)
CHUNK_COLUMNS = {
    "trace_id": ColumnType.TEXT,
    "chunk_id": ColumnType.TEXT,  # the chunk's first span id: a span logged alone replaces its own chunk
    "root": ColumnType.BOOLEAN,  # holds its trace's root span (a request's span)
    "root_span_id": ColumnType.TEXT,
    "start_ns": ColumnType.INTEGER,  # epoch ns: the root span's start, else the earliest
    "end_ns": ColumnType.INTEGER,
    "expires_ns": ColumnType.INTEGER,  # epoch ns after which the pruner deletes it; NULL: kept
    "spans": ColumnType.JSON,  # [[span_id, parent_span_id, name, start_ns, end_ns, status, root, attributes]]
}
#: where a span's fields sit in its chunk's JSON array (SQL filters address them so)
NAME, STATUS, ATTRIBUTES = 2, 5, 7
CHUNK_KEY = ("trace_id", "chunk_id")
#: a chunk row's values in this order (``chunk_rows``: tuples, written with ``upsert_values``)
CHUNK_COLUMN_NAMES = tuple(CHUNK_COLUMNS)
#: a span in a chunk's ``spans``: FinishedSpan[1:9] (rows written before 2026-12 carry a ninth item)
SPAN_FIELDS = ("span_id", "parent_span_id", "name", "start_ns", "end_ns", "status", "root", "attributes")


# a span as the collector hands it over (``tracing.SpanTuple``, FinishedSpan's fields), by index
_EXPIRES = operator.itemgetter(10)
_ROOT = operator.itemgetter(7)
_STORED = operator.itemgetter(slice(1, 9))  # what a chunk keeps of a span (see SPAN_FIELDS)
_ATTRIBUTES = operator.itemgetter(8)
#: attribute value types orjson writes as ``json.dumps`` does (floats only when finite)
_PLAIN = frozenset({str, int, bool, type(None)})


def _encoder(spans: list[SpanTuple]) -> Callable[[list[tuple]], Any]:
    """How the batch's chunks are encoded: to JSON text by orjson in one C call each when every
    attribute value is a string, integer, boolean, None or finite float (checked for the whole
    batch at C speed: ~50 ns a value), else left to the store (the standard library's JSON:
    ``NaN`` and ``Infinity`` kept, nested values checked)."""
    kinds = set(map(type, itertools.chain.from_iterable(map(dict.values, map(_ATTRIBUTES, spans)))))
    if float in kinds:
        kinds.discard(float)
        floats = [v for s in spans for v in _ATTRIBUTES(s).values() if type(v) is float]
        if not all(map(math.isfinite, floats)):
            return _as_python
    return _as_json_text if kinds <= _PLAIN else _as_python


def _as_json_text(stored: list[tuple]) -> JsonText | list[tuple]:
    try:
        return JsonText(orjson.dumps(stored).decode())
    except TypeError:  # an integer over 64 bits: the store's encoding writes it
        return stored


def _as_python(stored: list[tuple]) -> list[tuple]:
    return stored


def chunk_rows(spans: list[SpanTuple], ttl_ns: int | None, from_ns: int | None = None) -> list[tuple]:
    """A ``span_chunks`` row per trace of the batch (a tuple in ``CHUNK_COLUMN_NAMES``' order), its
    spans expiring ``ttl_ns`` after ``from_ns`` (epoch ns; unset: now) unless they carry their own
    ``expires_ns`` (the writer process runs this, or, writing in-process, the flush task on the
    event loop: a batch is ~4,000 spans, so every step per span counts)."""
    by_trace: dict[str, list[SpanTuple]] = {}
    get = by_trace.get
    for span in spans:
        group = get(span[0])
        if group is None:
            by_trace[span[0]] = [span]
        else:
            group.append(span)
    default_expiry = None if ttl_ns is None else (time.time_ns() if from_ns is None else from_ns) + ttl_ns
    timed = default_expiry is not None or any(map(_EXPIRES, spans))
    encode = _encoder(spans)
    rows = []
    for trace_id, group in by_trace.items():
        root = next(filter(_ROOT, group), None)
        expires = None
        if timed:  # the chunk goes with its last span; one kept for good keeps it
            ends = [_EXPIRES(s) or default_expiry for s in group]
            expires = None if None in ends else max(ends)
        # [span_id .. attributes] in one slice; its metrics are left out: they repeat
        # its attributes and times (the otel and console sinks send them)
        rows.append((trace_id, group[0][1], root is not None, root[1] if root else None,
                     root[4] if root else min(s[4] for s in group), root[5] if root else None, expires,
                     encode(list(map(_STORED, group)))))
    return rows


def encoded_chunk_rows(chunk: bytes, ttl_ns: int | None, from_ns: int | None = None) -> list[tuple]:
    """``chunk_rows`` of a ``SpanBuffer`` chunk, made in C from its bytes (stack/_spanrows.c: no span
    tuples, grouping or orjson in Python), or from its decoded spans when it holds a value that only
    the Python path writes right (nested, marshalled or non-finite)."""
    if ttl_ns is not None and from_ns is None:
        from_ns = time.time_ns()
    rows = _spancore.chunk_rows(chunk, None if ttl_ns is None else from_ns + ttl_ns, JsonText)
    return chunk_rows(_spancore.decode(chunk), ttl_ns, from_ns) if rows is None else rows
