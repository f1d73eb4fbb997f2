"""The span writer process: reads groups of span batches from stdin, writes each group to the span
store as chunk rows (``sinks.encoded_chunk_rows``) with a store of its own, in transactions of
``ROWS_PER_WRITE`` rows with a short pause after each (``write_rows``), and acks it on stdout.

Started by ``span_writer.SpanWriterProcess`` as ``python -m`` this module. Frames in
(``frames.py``): first ``("open", store_config)``, then per group ``("write", seq, urgent, [(ttl_ns,
queued_ns, size), ...])`` followed by the group's ``SpanBuffer`` chunks as they are, ``size`` bytes
each (no frame around them: the server writes them uncopied); frames out: ``("ready", pid)`` or ``("failed", reason)``,
then ``("written", seq, error | None, unavailable)`` per group. The server sends the next group
once this one is acked. It exits when stdin closes (the server shut down or died), after writing
what it read.

It runs under ``SCHED_IDLE`` (all its threads: the SQLite writer thread inherits it): while
requests keep every core busy it gets next to no CPU, and the server's backlog takes up the lag.
An ``urgent`` group (a read is waiting for it: ``SpanWriterProcess.sync``) is written at normal
priority where the process may switch back. Linux lets an unprivileged process leave
``SCHED_IDLE`` only if ``RLIMIT_NICE`` allows nice 0 (the default limit, 0, does not); with
``CAP_SYS_NICE`` (root, though Docker does not grant it by default) it may. Where it may not, a read waits until the backlog is written
at idle priority: at once on idle cores, and behind the requests on busy ones. Before each group
it also steps off the CPU the server last ran on, within the CPUs it inherited (``placement``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
import time
from collections.abc import Iterator

from pydantic import TypeAdapter

from stack.errors import ServiceUnavailableError
from stack.storage import StoreConfig, sqlstore_from_config

from .frames import read_frame, write_frame
from .placement import AwayFromServer, for_each_thread
from .sinks import CHUNK_COLUMN_NAMES, CHUNK_KEY, encoded_chunk_rows

log = logging.getLogger("polystack.span_writer")

#: rows one transaction writes at most, and the pause after it. ``SCHED_IDLE`` alone did not keep
#: the writer out of others' way: a kernel (6.18, ``preempt=none``) let it run a group's transaction
#: for 5-12 ms on a core that the load generator and the upstream were waiting for. With a 0.3 ms
#: pause every 256 rows, a proxy tracing at concurrency 1 had a lower p99 in each of four A/B runs
#: (1.50-1.75 ms against 1.79-1.98); req/s moved within the runs' noise, and so did the writer's
#: CPU a request (docs/performance.md, "a group in slices")
ROWS_PER_WRITE = 256
PAUSE_S = 0.0003


def _ack(fd: int, value: tuple) -> None:
    # the server gone: what it sent before is still written (up to stdin's end), unacknowledged
    with contextlib.suppress(BrokenPipeError):
        write_frame(fd, value)


def lowest_priority() -> bool:
    """Put every thread of this process (and those they start later) under SCHED_IDLE; True if it
    could. Else nice 19, the lowest priority the other policies give (a debug line says why)."""
    try:
        _set_policy(os.SCHED_IDLE)
        return True
    except (AttributeError, OSError) as exc:  # not Linux, or a kernel or sandbox that refuses it
        log.debug("cannot run under SCHED_IDLE (%s); running at nice 19 instead", exc)
        for_each_thread(lambda tid: os.setpriority(os.PRIO_PROCESS, tid, 19))
        return False


def _set_policy(policy: int) -> None:
    """``policy`` for every thread of this process (SCHED_IDLE is per thread on Linux)."""
    for_each_thread(lambda tid: os.sched_setscheduler(tid, policy, os.sched_param(0)))


class Priority:
    """Normal priority for the writing a read waits on, idle priority for the rest."""

    def __init__(self, idle: bool) -> None:
        self.idle = idle
        self.can_leave = idle  # until the kernel says otherwise

    @contextlib.contextmanager
    def urgent(self, urgent: bool) -> Iterator[None]:
        if not (urgent and self.can_leave):
            yield
            return
        try:
            _set_policy(os.SCHED_OTHER)
        except PermissionError as exc:  # no CAP_SYS_NICE and RLIMIT_NICE too low: see the module doc
            log.debug("cannot leave SCHED_IDLE for a read's writing (%s); it waits for idle time", exc)
            self.can_leave = False
            _set_policy(os.SCHED_IDLE)  # any thread switched before the refusal goes back
            yield
            return
        try:
            yield
        finally:
            _set_policy(os.SCHED_IDLE)


def group_rows(batches: list[tuple[int | None, int, bytes]]) -> list[tuple]:
    """The chunk rows of a group of queued batches, in their order (a later row for the same chunk
    replaces an earlier one, as when written one after the other)."""
    rows: list[tuple] = []
    now = time.time_ns()
    for ttl_ns, queued_ns, payload in batches:
        # ttl counts from when the server queued the batch, not from when it is written
        rows += encoded_chunk_rows(payload, None if ttl_ns is None else ttl_ns - (now - queued_ns))
    return rows


async def write_rows(store, rows: list[tuple], pause_s: float = PAUSE_S) -> None:
    """``rows`` upserted in transactions of ``ROWS_PER_WRITE`` at most, with a ``pause_s`` sleep after
    each (a row is a trace's spans of one batch). A failure leaves the transactions before it
    stored, though the server counts the whole group lost."""
    for start in range(0, len(rows), ROWS_PER_WRITE):
        await store.upsert_values("span_chunks", CHUNK_COLUMN_NAMES, rows[start:start + ROWS_PER_WRITE], CHUNK_KEY)
        if pause_s:
            await asyncio.sleep(pause_s)


async def serve(acks: int) -> int:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin.buffer)
    opening = await read_frame(reader)
    if opening is None:  # the server went away before sending the config
        return 0
    _, store_config = opening
    try:
        store = await sqlstore_from_config(TypeAdapter(StoreConfig).validate_python(store_config))
    except Exception as exc:  # noqa: BLE001 - any reason not to start is the server's to log
        _ack(acks, ("failed", f"{type(exc).__name__}: {exc}"))
        return 1
    # started at normal priority (the server waits for "ready"); from now on its threads, the
    # store's included, take only the CPU nothing else wants
    priority = Priority(lowest_priority())
    away = AwayFromServer(os.getppid())
    _ack(acks, ("ready", os.getpid()))
    try:
        while (message := await read_frame(reader)) is not None:
            _, seq, urgent, heads = message
            try:
                batches = [(ttl_ns, queued_ns, await reader.readexactly(size)) for ttl_ns, queued_ns, size in heads]
            except asyncio.IncompleteReadError:  # the server went away mid-group: it was not acknowledged
                break
            away.step()
            with priority.urgent(urgent):
                try:
                    # a read waits for an urgent group: written straight through
                    await write_rows(store, group_rows(batches), 0 if urgent else PAUSE_S)
                    _ack(acks, ("written", seq, None, False))
                except ServiceUnavailableError as exc:  # the database is away for a while: the server logs it
                    _ack(acks, ("written", seq, str(exc), True))
                except Exception as exc:
                    log.exception("a group of %d span batches failed", len(batches))
                    _ack(acks, ("written", seq, f"{type(exc).__name__}: {exc}", False))
    finally:
        await store.close()
    return 0


def main() -> None:
    # a Ctrl-C in the server's terminal is the server's to handle: it sends what is queued,
    # then closes stdin, and this process exits after writing it
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    acks = os.dup(1)
    os.dup2(2, 1)  # a stray print goes to the server's log, never into the acks
    logging.basicConfig(level=logging.WARNING, format="span writer %(process)d: %(levelname)s %(name)s: %(message)s")
    sys.exit(asyncio.run(serve(acks)))


if __name__ == "__main__":
    main()
