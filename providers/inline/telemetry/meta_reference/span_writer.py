"""The server's side of the span writer process (``span_writer_child.py``).

Why a process: writing a batch of spans is Python-level work (a row per trace, then the store's
statement building) that, done in a thread, holds the GIL against the event loop; with two cores
that cost every request ~35 µs of CPU. Here the server's share of a batch is a pipe write of
the chunks the collector's ``SpanBuffer`` encoded as the spans ended (stack/_spanbuffer.c); the
child decodes and writes them at the lowest CPU priority.

``write_chunks`` queues those chunks in a bounded backlog here and returns at once (``write``
encodes tuples first);
a feeder task hands the child the oldest queued batches, several to a transaction, as soon as
it has written the last ones. The child runs under ``SCHED_IDLE``, so while requests keep the
cores busy the writing waits for idle time and the backlog grows; when it would pass its limit
the oldest batches are dropped and counted. ``sync`` waits until every batch queued before it
is written: a read after a flush sees every span the server had buffered.

Why the backlog is here and not in the child: the child's intake could not stay responsive.
Python threads share one GIL, and a ``SCHED_IDLE`` writer thread that the kernel preempts while
it holds the GIL keeps an intake thread of the same process waiting until the cores go idle
(acks took ~3 s with both cores busy); a second process at normal priority for the intake would
cost another interpreter. Queued here, a batch costs the server nothing more than its bytes, and
a child that dies loses only the group it was writing.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, NamedTuple

from stack import _spancore
from stack.storage import StorageError, StorageUnavailableError

from .frames import frame, read_frame
from .span_log import IDLE_S

log = logging.getLogger(__name__)

CHILD_MODULE = "providers.inline.telemetry.meta_reference.span_writer_child"
#: the source tree holding ``providers``: the child imports this code, not another install's
_SOURCE_ROOT = str(Path(__file__).resolve().parents[4])
#: the most encoded span bytes one transaction takes from the backlog (~3,500 proxied requests,
#: ~14,000 spans, ~600 bytes a request): a commit (an fsync) shared by that many spans, while the
#: child's decoded group stays some tens of MiB, and a bound on what a child that dies mid-write
#: loses and on what a sync waits behind
GROUP_BYTES = 2 << 20
#: span tuples ``write`` encodes in one go on the event loop (a flush's spans come encoded already)
ENCODE_SPANS = 512


class WriterUnavailable(Exception):
    """The writer process could not start: its batches are to be written in-process."""


class _Batch(NamedTuple):
    number: int  # 1, 2, ... in the order ``write`` queued them
    spans: int
    ttl_ns: int | None
    queued_ns: int  # epoch ns: the child counts ttl_ns from here, not from when it writes
    payload: bytes  # a ``SpanBuffer`` chunk (``_spancore.decode`` reads it): decoded by the child


@dataclass(eq=False)
class _Child:
    proc: asyncio.subprocess.Process
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    dead: bool = False
    failure: str | None = None  # why it could not start, as it said
    reader: asyncio.Task | None = None
    written: asyncio.Future | None = None  # the ack of the group it is writing


class SpanWriterProcess:
    """A child process writing span batches to the store ``store_config`` describes (a dump of a
    ``StoreConfig`` naming a file or server, never ':memory:'), fed from a backlog of at most
    ``backlog_bytes`` of encoded spans. One that dies is restarted, the group it was
    writing counted in ``lost``; one that cannot start makes ``write`` and ``sync`` raise
    ``WriterUnavailable`` for good, and ``close`` hands back what it still held."""

    def __init__(self, store_config: dict[str, Any], *, command: list[str] | None = None,
                 close_timeout: float = 10.0, backlog_bytes: int = 64 << 20, group_bytes: int = GROUP_BYTES,
                 fold_bytes: int = 32 << 20, idle_s: float = IDLE_S) -> None:
        self.store_config = store_config
        # when the child folds the span log though no read waits (span_log's module doc)
        self.fold_options = {"fold_bytes": fold_bytes, "idle_s": idle_s}
        self.command = command or [sys.executable, "-m", CHILD_MODULE]
        self.close_timeout = close_timeout
        self.backlog_bytes = backlog_bytes
        self.group_bytes = group_bytes
        self.restarts = 0
        self.dropped = 0  # spans dropped from a full backlog, oldest first
        self.lost = 0  # spans of groups not written: the child died writing them, or the store failed
        self._backlog: collections.deque[_Batch] = collections.deque()
        self._queued_bytes = 0
        self._queued = 0  # batches ever queued: the last one's number
        self._in_flight: list[_Batch] = []  # the group the child is writing
        self._sent = 0  # the number of the last batch handed to a child
        # batches up to _logged are stored (logged by the child, or written); those up to _folded
        # are in span_chunks too (or were dropped or lost): a read waits for the ones between.
        # -1 until a first fold: the log may hold what an earlier server or child left there
        self._logged = 0
        self._folded = -1
        self._logged_spans = 0  # spans of the batches between the two
        self._urgent = 0  # syncs waiting: their groups are written at normal priority where the child may
        self._changed = asyncio.Event()  # replaced by a fresh one at each change (see _notify)
        self._feeder: asyncio.Task | None = None
        self._child: _Child | None = None
        self._unavailable: str | None = None
        self._closing = False
        self._seq = 0
        self._spawning = asyncio.Lock()

    @property
    def pid(self) -> int | None:
        return None if self._child is None else self._child.proc.pid

    @property
    def logged_spans(self) -> int:
        """Spans stored in the span log and not yet folded into span_chunks (as far as this server knows)."""
        return self._logged_spans

    @property
    def backlog_spans(self) -> int:
        """Spans queued or being written: accepted, not yet in the store."""
        return sum(b.spans for b in self._backlog) + sum(b.spans for b in self._in_flight)

    async def start(self) -> None:
        """Start the child; returns once it runs, without waiting for it to be ready."""
        async with self._spawning:
            if self._child is not None or self._closing:
                return
            if self._unavailable is not None:
                raise WriterUnavailable(self._unavailable)
            env = dict(os.environ)
            env["PYTHONPATH"] = os.pathsep.join(filter(None, [_SOURCE_ROOT, env.get("PYTHONPATH")]))
            try:
                proc = await asyncio.create_subprocess_exec(
                    *self.command, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, env=env,
                    start_new_session=True)  # a terminal's Ctrl-C reaches the server alone (see close)
            except OSError as exc:
                self._give_up(f"cannot run {self.command[0]}: {exc}")
                raise WriterUnavailable(self._unavailable) from exc
            child = _Child(proc)
            proc.stdin.write(frame(("open", self.store_config, self.fold_options)))
            child.reader = asyncio.get_running_loop().create_task(self._read_acks(child), name="span-writer-acks")
            self._child = child

    async def wait_ready(self) -> bool:
        """Wait until the child can write (True) or could not start (False)."""
        child = self._child
        if child is None:
            return False
        ready = asyncio.ensure_future(child.ready.wait())
        await asyncio.wait({ready, child.reader}, return_when=asyncio.FIRST_COMPLETED)
        ready.cancel()
        return child.ready.is_set()

    def write_chunks(self, chunks: list[bytes], ttl_ns: int | None) -> None:
        """Queue ``SpanBuffer`` chunks (``chunk_table.chunk_rows``'s ``ttl_ns``) for the child. A full backlog
        drops its oldest batches (counted in ``dropped``)."""
        if self._unavailable is not None:
            raise WriterUnavailable(self._unavailable)
        for chunk in chunks:
            self._queue(chunk, _spancore.chunk_spans(chunk), ttl_ns)

    async def write(self, spans: list[tuple], ttl_ns: int | None) -> None:
        """Queue ``spans`` (``tracing.SpanTuple``s), encoded ``ENCODE_SPANS`` at a time with requests
        let in between; as ``write_chunks``."""
        if self._unavailable is not None:
            raise WriterUnavailable(self._unavailable)
        for start in range(0, len(spans), ENCODE_SPANS):
            if start:
                await asyncio.sleep(0)
            self.write_chunks([_spancore.encode(spans[start:start + ENCODE_SPANS])], ttl_ns)

    def _queue(self, payload: bytes, spans: int, ttl_ns: int | None) -> None:
        while self._backlog and self._queued_bytes + len(payload) > self.backlog_bytes:
            oldest = self._backlog.popleft()
            self._queued_bytes -= len(oldest.payload)
            self.dropped += oldest.spans
        self._queued += 1
        self._backlog.append(_Batch(self._queued, spans, ttl_ns, time.time_ns(), payload))
        self._queued_bytes += len(payload)
        self._start_feeder()
        self._notify()

    def _start_feeder(self) -> None:
        if self._feeder is None and not self._closing:
            self._feeder = asyncio.get_running_loop().create_task(self._feed(), name="span-writer-feed")

    async def sync(self) -> None:
        """Return once every batch queued before this call is in span_chunks (the child folds the span
        log and writes the rest straight through), dropped or lost (counted): at normal priority
        where the child may leave ``SCHED_IDLE`` (see ``span_writer_child``), else when the cores
        leave it idle time. Raises ``WriterUnavailable`` when no child can write them."""
        target = self._queued
        self._urgent += 1
        self._start_feeder()  # a read before any batch still has the log folded
        self._notify()  # a feeder waiting for batches folds the log now
        try:
            await self._until(lambda: self._synced(target) or self._unavailable is not None)
        finally:
            self._urgent -= 1
        if not self._synced(target):
            raise WriterUnavailable(self._unavailable)

    def _synced(self, target: int) -> bool:
        """Whether every batch up to number ``target`` is in span_chunks, dropped or lost."""
        return self._first_pending() > target and not self._unfolded(target)

    def _unfolded(self, upto: int) -> bool:
        """Whether a batch numbered ``upto`` or less (or left by an earlier writer) is in the span log
        and not folded yet."""
        return self._folded < min(upto, self._logged)

    def _first_pending(self) -> int:
        """The number of the oldest batch queued and not yet written (dropped and lost ones are done)."""
        if self._in_flight:
            return self._in_flight[0].number
        return self._backlog[0].number if self._backlog else self._queued + 1

    def _notify(self) -> None:
        # waiters hold the event current when they checked their condition: no change is missed
        self._changed.set()
        self._changed = asyncio.Event()

    async def _until(self, condition: Callable[[], bool]) -> None:
        while not condition():
            await self._changed.wait()

    async def _feed(self) -> None:
        try:
            await self._feed_groups()
        except Exception as exc:  # syncs must not wait on a feeder that is gone: in-process writing takes over
            log.exception("the span writer's feeder failed")
            self._give_up(f"the span writer's feeder failed: {type(exc).__name__}: {exc}")

    async def _feed_groups(self) -> None:
        """Hand the child the backlog, a group at a time, each once the last one is written."""
        while True:
            await self._until(lambda: self._work() or self._closing or self._unavailable is not None)
            if not self._work() or self._closing or self._unavailable is not None:
                return
            child = await self._writing_child()
            if child is None:
                return
            if child.dead or not self._work():  # it died while this waited (its successor), or close gave up
                continue
            # with nothing queued, an empty urgent group: the child folds the log for a read
            group = self._take_group() if self._backlog else []
            last = group[-1].number if group else self._sent
            self._sent = last
            self._seq += 1
            child.written = asyncio.get_running_loop().create_future()
            stdin = child.proc.stdin
            stdin.write(frame(("write", self._seq, self._urgent > 0, [
                (b.ttl_ns, b.queued_ns, len(b.payload)) for b in group])))
            # a child that died takes its pipe with it: the ack reader then fails ``written``
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                # the chunks after the head as they are, one at a time: a group (up to 2 MiB) put
                # into one marshalled frame cost the event loop ~1 ms of copying a flush
                for b in group:
                    stdin.write(b.payload)
                    await stdin.drain()
            try:
                folded = await child.written
            except (StorageError, StorageUnavailableError) as exc:
                spans = sum(b.spans for b in group)
                self.lost += spans
                log.warning("span writer: %s; %d spans lost", exc, spans)
                if self._urgent and self._unfolded(last):
                    # the fold a read waits for failed: what is logged stays logged (the child folds it
                    # later), and reads stop waiting for it rather than ask again at once
                    log.warning("span writer: the span log could not be folded for a read; %d logged spans "
                                "are left out of reads until a later fold", self._logged_spans)
                    self._folded = self._logged
            else:
                self._logged = last
                if folded:  # the log folded whole: nothing up to this group waits in it
                    self._folded, self._logged_spans = last, 0
                else:
                    self._logged_spans += sum(b.spans for b in group)
            finally:
                self._in_flight = []
                self._notify()

    def _work(self) -> bool:
        """Batches to hand over, or a read waiting for the log to be folded."""
        return bool(self._backlog) or (self._urgent > 0 and self._unfolded(self._sent))

    async def _writing_child(self) -> _Child | None:
        """The child that writes the next group, once ready; None when closing or none can start."""
        if self._child is None:  # the last one died and its successor did not start yet
            with contextlib.suppress(WriterUnavailable):
                await self.start()
        child = self._child
        if child is None or not await self.wait_ready():
            self._notify()  # syncs waiting on a child that cannot start give up
            return None
        return child

    def _take_group(self) -> list[_Batch]:
        group = [self._backlog.popleft()]
        size = len(group[0].payload)
        while self._backlog and size + len(self._backlog[0].payload) <= self.group_bytes:
            size += len(self._backlog[0].payload)
            group.append(self._backlog.popleft())
        self._queued_bytes -= size
        self._in_flight = group
        return group

    def _give_up(self, reason: str) -> None:
        self._unavailable = reason
        self._notify()

    async def _read_acks(self, child: _Child) -> None:
        try:
            while (message := await read_frame(child.proc.stdout)) is not None:
                self._take(child, message)
        except Exception:  # never leave a write waiting on acks that cannot come
            log.exception("unreadable message from span writer process %d; stopping it", child.proc.pid)
            child.proc.kill()
        code = await child.proc.wait()
        child.dead = True
        if self._child is child:
            self._child = None
        if not child.ready.is_set():
            self._give_up(f"the span writer process exited with code {code} before it was ready"
                          + (f": {child.failure}" if child.failure else " (its error is in the log above)"))
        if child.written is not None and not child.written.done():
            child.written.set_exception(StorageUnavailableError(
                f"the span writer process exited with code {code} while writing (restarted)"))
        if child.ready.is_set() and not self._closing:
            log.warning("span writer process %d exited with code %s; starting another", child.proc.pid, code)
            self.restarts += 1
            # one that cannot start: the next write falls back to writing in-process, and logs it
            with contextlib.suppress(WriterUnavailable):
                await self.start()
        self._notify()

    @staticmethod
    def _take(child: _Child, message: tuple) -> None:
        if message[0] == "ready":
            child.ready.set()
        elif message[0] == "failed":
            child.failure = message[1]
        elif message[0] == "written":
            _, _seq, error, unavailable, folded = message
            written = child.written
            if written is None or written.done():
                return
            if error is None:
                written.set_result(folded)
            else:
                written.set_exception((StorageUnavailableError if unavailable else StorageError)(error))

    async def close(self) -> list[tuple[list[tuple], int | None]]:
        """Have the child write the backlog and exit (killed after ``close_timeout`` seconds: what it
        had not written then is counted in ``lost``). Returns the batches no child could take (one
        could not start), decoded, for the caller to write: ``[(spans, ttl_ns)]``."""
        # the backlog written and the log folded: the store is whole when the server has stopped
        if (self._backlog or self._unfolded(self._sent)) and self._unavailable is None:
            try:
                # no child could take the backlog: it stays queued and is handed back below
                with contextlib.suppress(WriterUnavailable):
                    await asyncio.wait_for(self.sync(), self.close_timeout)
            except TimeoutError:  # the group being written is the child's to finish (or the kill's to lose)
                queued = sum(b.spans for b in self._backlog)
                log.warning("span writer process did not write its backlog and fold the span log within %.0f s; "
                            "%d queued spans lost (what it logged stays for the next start to fold)",
                            self.close_timeout, queued)
                self.lost += queued
                self._backlog.clear()
        self._closing = True
        self._notify()
        async with self._spawning:  # a restart in progress finishes first
            child, self._child = self._child, None
        if child is not None:
            await self._stop(child)
        if self._feeder is not None:  # it returns once the group it sent is acked or failed (counted)
            await self._feeder
        left = [(_spancore.decode(b.payload), b.ttl_ns) for b in self._backlog]
        self._backlog.clear()
        return left

    async def _stop(self, child: _Child) -> None:
        if not child.ready.is_set():  # still starting, nothing sent: nothing to wait for
            child.proc.kill()
        child.proc.stdin.close()  # end of input: it writes what it read, then exits
        try:
            await asyncio.wait_for(child.proc.wait(), self.close_timeout)
        except TimeoutError:
            log.warning("span writer process %d did not exit within %.0f s; killed it", child.proc.pid,
                        self.close_timeout)
            child.proc.kill()
            await child.proc.wait()
        await child.reader
