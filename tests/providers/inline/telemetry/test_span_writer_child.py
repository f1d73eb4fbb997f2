"""The span writer process's writing: a group's rows in transactions of ``ROWS_PER_WRITE`` with a pause
after each (the process itself, end to end, is in test_span_writer.py)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from providers.inline.telemetry.meta_reference import span_writer_child
from providers.inline.telemetry.meta_reference.sinks import CHUNK_COLUMN_NAMES, CHUNK_KEY
from providers.inline.telemetry.meta_reference.span_writer_child import PAUSE_S, ROWS_PER_WRITE, write_rows


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

    monkeypatch.setattr(span_writer_child, "asyncio", SimpleNamespace(sleep=pause))
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
