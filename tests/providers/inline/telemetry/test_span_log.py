"""The span log: batches stored as they came and folded into ``span_chunks`` rows later, in the
order they were queued, idempotently; rows written in transactions of ``ROWS_PER_WRITE`` with a
pause after each (the writer process itself, end to end, is in test_span_writer.py)."""

from __future__ import annotations

import time
from types import SimpleNamespace

import pytest

from providers.inline.telemetry.meta_reference import span_log
from providers.inline.telemetry.meta_reference.chunk_table import CHUNK_COLUMN_NAMES, CHUNK_KEY
from providers.inline.telemetry.meta_reference.sinks import SpanStoreSink
from providers.inline.telemetry.meta_reference.span_log import (
    FOLD_AFTER_S,
    LOG_TABLE,
    PAUSE_S,
    ROWS_PER_WRITE,
    SpanLog,
    write_rows,
)
from stack import _spancore
from stack.storage import sqlstore_from_config


def _batch(trace_id: str, ttl_ns: int | None = None, queued_ns: int | None = None, **attributes) -> tuple:
    """A queued batch as the writer process gets it: (ttl_ns, queued_ns, a SpanBuffer chunk of one root span)."""
    span = (trace_id, trace_id[:16], None, "POST /v1/chat/completions", 1, 2, "ok", True, attributes, (), None)
    return ttl_ns, time.time_ns() if queued_ns is None else queued_ns, _spancore.encode([span])


@pytest.fixture
async def sink(store_config):
    """A span store on each backend, with the span log's table (as the server makes them)."""
    sink = SpanStoreSink(await sqlstore_from_config(store_config))
    await sink.initialize()
    yield sink
    await sink.store.close()


class _RecordingStore:
    """A test double of the span store: notes each transaction's rows; ``fail_at``: the call that raises."""

    def __init__(self, steps: list, fail_at: int | None = None) -> None:
        self.steps, self.fail_at, self.calls = steps, fail_at, 0

    async def upsert_values(self, table, columns, rows, key):
        self.calls += 1
        if self.calls == self.fail_at:
            raise RuntimeError("disk full")
        assert (table, columns, key) == ("span_chunks", CHUNK_COLUMN_NAMES, CHUNK_KEY)
        self.steps.append(("write", [row[0] for row in rows]))


@pytest.fixture
def steps(monkeypatch) -> list:
    steps: list = []

    async def pause(seconds):
        steps.append(("pause", seconds))

    monkeypatch.setattr(span_log, "asyncio", SimpleNamespace(sleep=pause))
    return steps


async def test_a_group_is_written_in_transactions_of_at_most_rows_per_write_each_followed_by_a_pause(steps):
    rows = [(n,) for n in range(2 * ROWS_PER_WRITE + 3)]
    await write_rows(_RecordingStore(steps), rows)
    assert steps == [("write", list(range(ROWS_PER_WRITE))), ("pause", PAUSE_S),
                     ("write", list(range(ROWS_PER_WRITE, 2 * ROWS_PER_WRITE))), ("pause", PAUSE_S),
                     ("write", list(range(2 * ROWS_PER_WRITE, 2 * ROWS_PER_WRITE + 3))), ("pause", PAUSE_S)]


async def test_a_small_group_is_one_transaction(steps):
    await write_rows(_RecordingStore(steps), [(0,), (1,)])
    assert steps == [("write", [0, 1]), ("pause", PAUSE_S)]


async def test_a_failing_transaction_stops_the_group_and_leaves_the_ones_before_it_written(steps):
    store = _RecordingStore(steps, fail_at=2)
    with pytest.raises(RuntimeError, match="disk full"):
        await write_rows(store, [(n,) for n in range(3 * ROWS_PER_WRITE)])
    assert steps == [("write", list(range(ROWS_PER_WRITE))), ("pause", PAUSE_S)] and store.calls == 2


async def test_without_a_pause_the_transactions_follow_each_other(steps):
    """How an urgent group (a read waits for it) is written."""
    await write_rows(_RecordingStore(steps), [(n,) for n in range(ROWS_PER_WRITE + 1)], 0)
    assert steps == [("write", list(range(ROWS_PER_WRITE))), ("write", [ROWS_PER_WRITE])]


async def test_logged_batches_are_not_rows_until_folded_then_rows_in_the_order_queued(sink):
    log = SpanLog(sink.store)
    # the same span three times (one chunk row): each batch replaces the last one's row
    await log.append([_batch("a" * 32, version=0), _batch("a" * 32, version=1)])
    await log.append([_batch("a" * 32, version=2), _batch("b" * 32)])
    assert await sink.store.fetch_all("span_chunks") == [] and await sink.store.fetch_all(LOG_TABLE) != []
    await log.fold(pause_s=0)
    assert [s["attributes"] for s in await sink.trace("a" * 32)] == [{"version": 2}]
    assert len(await sink.trace("b" * 32)) == 1
    assert await sink.store.fetch_all(LOG_TABLE) == [] and log.unfolded_bytes == 0


async def test_batches_queued_in_the_same_nanosecond_keep_their_order(sink):
    log = SpanLog(sink.store)
    at = time.time_ns()
    await log.append([_batch("c" * 32, queued_ns=at, version=v) for v in range(12)])
    await log.fold(pause_s=0)
    assert [s["attributes"] for s in await sink.trace("c" * 32)] == [{"version": 11}]


async def test_a_fold_cut_short_between_rows_and_deletion_writes_the_same_rows_again(sink, monkeypatch):
    log = SpanLog(sink.store)
    await log.append([_batch("d" * 32, ttl_ns=3_600_000_000_000, version=1)])
    delete_in = sink.store.delete_in

    async def dies(*args):  # a writer killed after the rows' commit, before the log's
        raise RuntimeError("killed")

    monkeypatch.setattr(sink.store, "delete_in", dies)
    with pytest.raises(RuntimeError):
        await log.fold(pause_s=0)
    first = await sink.store.fetch_all("span_chunks")
    monkeypatch.setattr(sink.store, "delete_in", delete_in)
    await SpanLog(sink.store).fold(pause_s=0)  # the next writer
    assert await sink.store.fetch_all("span_chunks") == first and len(first) == 1
    assert await sink.store.fetch_all(LOG_TABLE) == []


async def test_a_fold_expires_rows_from_when_the_server_queued_the_batch(sink):
    queued = time.time_ns() - 5_000_000_000  # logged 5 s ago, with a 10 s ttl
    log = SpanLog(sink.store)
    await log.append([_batch("e" * 32, ttl_ns=10_000_000_000, queued_ns=queued)])
    await log.fold(pause_s=0)
    [row] = await sink.store.fetch_all("span_chunks")
    assert abs(row["expires_ns"] - (queued + 10_000_000_000)) < 1_000_000_000


async def test_a_slice_folds_its_entries_and_a_fold_the_rest(sink):
    log = SpanLog(sink.store, entries_per_slice=1)
    await log.append([_batch(f"{i:032x}") for i in range(3)])
    assert not await log.fold_slice(pause_s=0)
    assert len(await sink.store.fetch_all(LOG_TABLE)) == 2 and len(await sink.store.fetch_all("span_chunks")) == 1
    assert log.unfolded_bytes > 0, "not folded whole yet"
    await log.fold(pause_s=0)
    assert len(await sink.store.fetch_all("span_chunks")) == 3


async def test_what_a_writer_logged_is_due_past_its_size_or_age(sink):
    log = SpanLog(sink.store)
    assert not log.due(limit_bytes=0), "nothing logged"
    batch = _batch("f" * 32)
    await log.append([batch])
    assert log.due(limit_bytes=len(batch[2]) - 1) and not log.due(limit_bytes=len(batch[2]))
    later = log.oldest_ns + int((FOLD_AFTER_S + 1) * 1e9)
    assert log.due(limit_bytes=1 << 30, now_ns=later)


async def test_a_server_without_a_writer_folds_what_one_left_before_a_read(sink):
    await SpanLog(sink.store).append([_batch("9" * 32, model="m")])  # a writer process that is gone
    assert await sink.trace("9" * 32) == []
    await sink.sync()
    assert [s["attributes"] for s in await sink.trace("9" * 32)] == [{"model": "m"}]


async def test_an_entry_that_is_not_a_span_chunk_is_dropped_and_the_rest_folded(sink, caplog):
    log = SpanLog(sink.store)
    await log.append([_batch("7" * 32)])
    await sink.store.upsert_values(LOG_TABLE, ("entry_id", "queued_ns", "ttl_ns", "payload"),
                                   [("0" * 20, 0, None, b"not a chunk")], ("entry_id",))  # a damaged entry
    await log.fold(pause_s=0)
    assert len(await sink.trace("7" * 32)) == 1 and await sink.store.fetch_all(LOG_TABLE) == []
    assert f"span log entry {'0' * 20} cannot be read (not a span chunk" in caplog.text
