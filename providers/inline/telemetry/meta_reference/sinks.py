"""Where finished spans go: the span store (SQL) and the console (OpenTelemetry: ``otel.py``)."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import time
import uuid
from typing import Any

from stack.storage import ColumnType, JsonMatch, JsonPredicate, JsonTest, SqlStore
from stack.tracing import EventRecord, SpanTuple, decode_chunks, named_span

from . import span_log
from .chunk_table import CHUNK_COLUMN_NAMES, CHUNK_COLUMNS, CHUNK_KEY, SPAN_FIELDS, chunk_rows, encoded_chunk_rows
from .span_writer import SpanWriterProcess, WriterUnavailable

log = logging.getLogger(__name__)

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
    "expires_ns": ColumnType.INTEGER,
}
#: (table, name, columns): trace listings newest first, a root span's trace, expired rows
INDEXES = [
    ("span_chunks", "roots", ("root", "start_ns")),
    ("span_chunks", "root_span", ("root_span_id",)),
    ("span_chunks", "expiry", ("expires_ns",)),
    ("events", "trace", ("trace_id",)),
    ("events", "expiry", ("expires_ns",)),
]
TRACE_COLUMNS = ("trace_id", "root_span_id", "start_ns", "end_ns")
def event_fields(event: EventRecord) -> dict[str, Any]:
    fields = {"type": event.type, "timestamp": event.timestamp, "message": event.message, "severity": event.severity,
              "metric": event.metric, "value": event.value, "unit": event.unit, "attributes": event.attributes}
    return {k: v for k, v in fields.items() if v is not None}


class SpanStoreSink:
    """Spans in a SQL store, a row per trace and batch; posted events in a table of their own.
    Reads give span dicts (``SPAN_FIELDS`` and ``trace_id``), a span logged twice (started, then
    ended) once: its latest state.

    With a ``writer``, the collector's span batches are written by that child process; the rest
    stays on this process's own store: reads (their rows are wanted here), posted events and
    posted span starts (``write_here``: the API's 200 then means stored, whatever becomes of the
    child) and pruning, all rare next to request spans. SQLite lets the two processes write the
    one file (WAL, and a busy timeout for the moments both hold the write lock)."""

    def __init__(self, store: SqlStore, *, ttl_seconds: int | None = None, prune_interval: float = 60.0,
                 writer: SpanWriterProcess | None = None, read_wait: float = 10.0) -> None:
        self.store = store
        self.ttl_ns = None if ttl_seconds is None else ttl_seconds * 1_000_000_000
        self.prune_interval = prune_interval
        self.writer = writer
        self.read_wait = read_wait
        self._span_log = span_log.SpanLog(store)  # what a writer process left, folded before reads without one
        self._next_prune = 0.0

    async def initialize(self) -> None:
        await self.store.create_table("span_chunks", CHUNK_COLUMNS, primary_key=CHUNK_KEY)
        await self.store.create_table("events", EVENT_COLUMNS, primary_key="event_id")
        for table, name, columns in INDEXES:
            await self.store.create_index(table, name, columns)
        await span_log.create_log_table(self.store)
        if self.writer is not None:  # after the tables: the child writes into them
            try:
                await self.writer.start()
            except WriterUnavailable as exc:
                await self._without_writer(exc)

    async def export(self, spans: list[SpanTuple], events: list[EventRecord]) -> None:
        if spans:
            if self.writer is None:
                await self.write_here(spans)
            else:
                try:
                    await self.writer.write(spans, self.ttl_ns)
                except WriterUnavailable as exc:  # it never wrote this batch: nothing lost
                    await self._without_writer(exc)
                    await self.write_here(spans)
        if events:
            await self._events(events)

    async def export_encoded(self, chunks: list[bytes], events: list[EventRecord]) -> None:
        """The collector's spans as its buffer encoded them: to the writer process as they are."""
        if chunks:
            if self.writer is None:
                rows = [row for chunk in chunks for row in encoded_chunk_rows(chunk, self.ttl_ns)]
                await self.store.upsert_values("span_chunks", CHUNK_COLUMN_NAMES, rows, CHUNK_KEY)
            else:
                try:
                    self.writer.write_chunks(chunks, self.ttl_ns)
                except WriterUnavailable as exc:
                    await self._without_writer(exc)
                    await self.write_here(decode_chunks(chunks))
        if events:
            await self._events(events)

    async def sync(self) -> None:
        """Return once every span batch exported before it is in the store (the writer process
        writes its backlog and folds the span log; without one, ``export`` wrote them, and what a
        writer process left in the log is folded here), or after ``read_wait`` seconds."""
        if self.writer is not None:
            try:
                await asyncio.wait_for(self.writer.sync(), self.read_wait)
            except WriterUnavailable as exc:  # what it still held is written here
                await self._without_writer(exc)
            except TimeoutError:  # a starved (or stopped) writer must not hold reads for as long as it lasts
                log.warning("the span writer process still had %d spans to store and %d to fold after %g s; "
                            "answering from what is folded", self.writer.backlog_spans, self.writer.logged_spans,
                            self.read_wait)
        if self.writer is None:
            await self._span_log.fold(pause_s=0)

    def stats(self) -> dict[str, Any]:
        """Who writes the collector's span batches (``/v1/health``'s ``telemetry``): the writer
        process, with its pid, how often it was replaced, the spans it has yet to write and
        those it did not (dropped from its full backlog, lost with a dying child or a failed
        write), or this process ("thread"); and the spans it stored in the span log that are
        not folded into rows yet (``span_log``)."""
        writer = self.writer
        if writer is None:
            return {"span_writer": "thread"}
        return {"span_writer": "process", "span_writer_pid": writer.pid, "span_writer_restarts": writer.restarts,
                "span_writer_backlog_spans": writer.backlog_spans, "span_log_spans": writer.logged_spans,
                "span_writer_dropped": writer.dropped, "span_writer_lost": writer.lost}

    async def write_here(self, spans: list[SpanTuple], ttl_ns: int | None = None) -> None:
        """Write ``spans`` with this process's store, now (expiring ``ttl_ns`` from now; unset: the sink's ttl)."""
        rows = chunk_rows(spans, self.ttl_ns if ttl_ns is None else ttl_ns)
        await self.store.upsert_values("span_chunks", CHUNK_COLUMN_NAMES, rows, CHUNK_KEY)

    async def _without_writer(self, reason: WriterUnavailable) -> None:
        log.warning("%s; writing spans in the server process instead", reason)
        writer, self.writer = self.writer, None
        for spans, ttl_ns in await writer.close():  # queued, and no child could take them
            await self.write_here(spans, ttl_ns)

    async def _events(self, events: list[EventRecord]) -> None:
        await self.store.upsert_many("events", [
            {"event_id": uuid.uuid4().hex, "trace_id": e.trace_id, "span_id": e.span_id, "expires_ns": e.expires_ns,
             **dict.fromkeys(EVENT_COLUMNS.keys() - {"event_id", "trace_id", "span_id", "expires_ns"}), **event_fields(e)}
            for e in events
        ], ("event_id",))

    # -- reads -------------------------------------------------------------------------------

    async def traces(self, predicate: JsonPredicate | None, order_by: list[tuple[str, str]], limit: int,
                     offset: int) -> list[dict[str, Any]]:
        """Traces (``TRACE_COLUMNS`` of their first root in ``order_by``) with a span passing ``predicate``."""
        return await self.store.select(
            "span_chunks", columns=TRACE_COLUMNS, where={"root": True},
            match=None if predicate is None else JsonMatch("spans", predicate, share="trace_id"),
            # a span stored started and again ended: the ended one
            first_per="trace_id", order_by=[*order_by, ("end_ns", "asc", "last")], limit=limit, offset=offset)

    async def trace(self, trace_id: str) -> list[dict[str, Any]]:
        """Every span of ``trace_id``, by start time."""
        return _spans(await self.store.fetch_all("span_chunks", {"trace_id": trace_id}))

    async def matching_traces(self, predicate: JsonPredicate | None) -> list[dict[str, Any]]:
        """Every span of the traces that have a span passing ``predicate`` (None: of every trace)."""
        return _spans(await self.store.select(
            "span_chunks", match=None if predicate is None else JsonMatch("spans", predicate, share="trace_id")))

    async def trace_of(self, span_id: str) -> str | None:
        """The trace holding ``span_id``: a root span's is found by its column, another's inside the chunks."""
        chunk = await self.store.fetch_one("span_chunks", {"root_span_id": span_id})
        if chunk is None:
            found = await self.store.select("span_chunks", columns=["trace_id"], limit=1,
                                            match=JsonMatch("spans", JsonTest((0,), "eq", span_id)))
            chunk = found[0] if found else None
        return None if chunk is None else chunk["trace_id"]

    async def maintain(self) -> None:
        """Prune expired rows every ``prune_interval`` seconds (the store's own thread or connection does it)."""
        if time.monotonic() >= self._next_prune:
            self._next_prune = time.monotonic() + self.prune_interval
            await self.prune(time.time_ns())

    async def prune(self, now_ns: int) -> int:
        """Delete the chunks and events whose ``expires_ns`` passed; how many rows went."""
        return (await self.store.delete_where("span_chunks", "expires_ns", below=now_ns)
                + await self.store.delete_where("events", "expires_ns", below=now_ns))

    async def close(self) -> None:
        if self.writer is not None:
            for spans, ttl_ns in await self.writer.close():  # queued, and no child could take them
                await self.write_here(spans, ttl_ns)
        await self.store.close()


def _spans(chunks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    latest: dict[tuple[str, str], dict[str, Any]] = {}
    for chunk in chunks:
        for values in chunk["spans"]:
            span = dict(zip(SPAN_FIELDS, values), trace_id=chunk["trace_id"])
            key = (span["trace_id"], span["span_id"])
            seen = latest.get(key)
            if seen is None or (seen["end_ns"] is None and span["end_ns"] is not None):
                latest[key] = span
    return sorted(latest.values(), key=lambda s: s["start_ns"])


class ConsoleSink:
    """One line per span and event on stderr, written by a worker thread."""

    async def export(self, spans: list[SpanTuple], events: list[EventRecord]) -> None:
        spans = list(map(named_span, spans))
        lines = [
            f"[trace {s.trace_id} span {s.span_id}] {s.name} {(s.end_ns - s.start_ns) / 1e6:.2f} ms "
            f"{s.status} {json.dumps(s.attributes, default=str)}"
            for s in spans
        ]
        own = [e for s in spans for e in s.metric_events()]
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
