"""The span log: the span batches the writer process was handed, stored as they came (the
``SpanBuffer`` chunks' bytes), before they become ``span_chunks`` rows.

Why: turning a batch into chunk rows (a row per trace, its spans as JSON) and writing those rows
cost ~20 µs of CPU a proxied request, and that work, even at idle priority on the other core,
slowed the server by ~5 points more than the spans themselves did (docs/performance.md, "the
span log"). Storing a batch as one blob costs a fraction of that. So while requests come the
writer logs; it folds the log into ``span_chunks`` when

- a read waits for it (``SpanWriterProcess.sync``: the whole log, at once);
- no group came for ``IDLE_S`` (the server is idle or nearly);
- what this writer logged since its last whole fold passes the size limit (``span_log_mb``),
  or its oldest entry is older than ``FOLD_AFTER_S``;
- at the start of a writer process, when the log holds entries (a writer that died, a server
  that was stopped before folding).

All but the first fold at idle priority a slice at a time, and a group that comes meanwhile is
logged before the next slice. A logged batch is stored: an ack means it is kept.

Folding is idempotent: a slice's chunk rows are upserted first, then its log entries deleted; a
fold cut short between the two writes the same rows again (an entry's expiry counts from when
the server queued it, not from when it is folded).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid

from stack.storage import ColumnType, SqlStore

from .chunk_table import CHUNK_COLUMN_NAMES, CHUNK_KEY, encoded_chunk_rows

log = logging.getLogger(__name__)

LOG_TABLE = "span_log"
LOG_COLUMNS = {
    "entry_id": ColumnType.TEXT,  # sorts in the order the server queued the batches (see SpanLog.append)
    "queued_ns": ColumnType.INTEGER,  # epoch ns: when the server queued it (its ttl counts from here)
    "ttl_ns": ColumnType.INTEGER,  # NULL: kept until deleted
    "payload": ColumnType.BLOB,  # a SpanBuffer chunk, as _spancore.decode reads it
}
LOG_COLUMN_NAMES = tuple(LOG_COLUMNS)

#: rows one transaction writes at most, and the pause after it. ``SCHED_IDLE`` alone did not keep
#: the writer out of others' way: a kernel (6.18, ``preempt=none``) let it run a group's transaction
#: for 5-12 ms on a core that the load generator and the upstream were waiting for. With a 0.3 ms
#: pause every 256 rows, a proxy tracing at concurrency 1 had a lower p99 in each of four A/B runs
#: (1.50-1.75 ms against 1.79-1.98); req/s moved within the runs' noise, and so did the writer's
#: CPU a request (docs/performance.md, "a group in slices")
ROWS_PER_WRITE = 256
PAUSE_S = 0.0003
#: log entries one slice of a fold takes (a chunk holds up to 512 spans: ~1,000 rows a slice)
ENTRIES_PER_SLICE = 8
#: seconds without a group after which the writer takes the server for idle and folds
IDLE_S = 2.0
#: the oldest entry this writer logged is folded by then, busy server or not
FOLD_AFTER_S = 60.0


def group_rows(batches: list[tuple[int | None, int, bytes]]) -> list[tuple]:
    """The chunk rows of queued batches ``(ttl_ns, queued_ns, payload)``, in their order (a later
    row for the same chunk replaces an earlier one, as when written one after the other)."""
    rows: list[tuple] = []
    for ttl_ns, queued_ns, payload in batches:
        # ttl counts from when the server queued the batch, not from when it is written
        rows += encoded_chunk_rows(payload, ttl_ns, queued_ns)
    return rows


async def write_rows(store: SqlStore, rows: list[tuple], pause_s: float = PAUSE_S) -> None:
    """``rows`` upserted in transactions of ``ROWS_PER_WRITE`` at most, with a ``pause_s`` sleep after
    each (a row is a trace's spans of one batch). A failure leaves the transactions before it stored."""
    for start in range(0, len(rows), ROWS_PER_WRITE):
        await store.upsert_values("span_chunks", CHUNK_COLUMN_NAMES, rows[start:start + ROWS_PER_WRITE], CHUNK_KEY)
        if pause_s:
            await asyncio.sleep(pause_s)


def _readable_rows(entries: list[dict]) -> list[tuple]:
    """The chunk rows of log entries, in their order; an entry that is not a span chunk (only a
    damaged store makes one) is logged and left out, so it cannot block every fold after it."""
    rows: list[tuple] = []
    for entry in entries:
        try:
            rows += group_rows([(entry["ttl_ns"], entry["queued_ns"], entry["payload"])])
        except ValueError as exc:
            log.error("span log entry %s cannot be read (%s); dropped", entry["entry_id"], exc)
    return rows


async def create_log_table(store: SqlStore) -> None:
    await store.create_table(LOG_TABLE, LOG_COLUMNS, primary_key="entry_id")


class SpanLog:
    """The span log of ``store``, as one writer appends to it and folds it."""

    def __init__(self, store: SqlStore, *, entries_per_slice: int = ENTRIES_PER_SLICE) -> None:
        self.store = store
        self.entries_per_slice = entries_per_slice
        self._writer = uuid.uuid4().hex[:12]  # entries of two writers never share an id
        self._appended = 0
        self.unfolded_bytes = 0  # logged by this writer since the log was last folded whole
        self.oldest_ns: int | None = None  # monotonic: when this writer logged its oldest unfolded entry

    async def append(self, batches: list[tuple[int | None, int, bytes]]) -> None:
        """Store ``batches`` ``(ttl_ns, queued_ns, payload)`` as they are, in one transaction."""
        rows = []
        for ttl_ns, queued_ns, payload in batches:
            self._appended += 1
            # queue time first, then this writer's count: the order the server queued them in
            rows.append((f"{queued_ns:020d}.{self._appended:012d}.{self._writer}", queued_ns, ttl_ns, payload))
        await self.store.upsert_values(LOG_TABLE, LOG_COLUMN_NAMES, rows, ("entry_id",))
        self.unfolded_bytes += sum(len(payload) for _, _, payload in batches)
        if self.oldest_ns is None:
            self.oldest_ns = time.monotonic_ns()

    def due(self, limit_bytes: int, now_ns: int | None = None) -> bool:
        """Whether what this writer logged is due to be folded though the server is busy."""
        if self.oldest_ns is None:
            return False
        age_s = ((time.monotonic_ns() if now_ns is None else now_ns) - self.oldest_ns) / 1e9
        return self.unfolded_bytes > limit_bytes or age_s > FOLD_AFTER_S

    async def fold_slice(self, pause_s: float = PAUSE_S) -> bool:
        """Fold the oldest ``entries_per_slice`` entries (of any writer); True once the log is empty."""
        entries = await self.store.fetch_all(LOG_TABLE, order_by=[("entry_id", "asc")], limit=self.entries_per_slice)
        if entries:
            await write_rows(self.store, _readable_rows(entries), pause_s)
            await self.store.delete_in(LOG_TABLE, "entry_id", [e["entry_id"] for e in entries])
        if len(entries) < self.entries_per_slice:
            self.unfolded_bytes, self.oldest_ns = 0, None
            return True
        return False

    async def fold(self, pause_s: float = PAUSE_S) -> None:
        """Fold slice after slice until the log is empty (what a read waits for)."""
        while not await self.fold_slice(pause_s):
            pass
