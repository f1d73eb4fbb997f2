"""The span writer process: reads groups of span batches from stdin, stores each group in the span
log (``span_log``: the batches' bytes as they came) with a store of its own, and acks it on stdout;
it folds the log into ``span_chunks`` rows when a read waits, when the server is idle, or when
the log grows past its limit (``span_log.SpanLog``).

Started by ``span_writer.SpanWriterProcess`` as ``python -m`` this module. Frames in
(``frames.py``): first ``("open", store_config, {"fold_bytes": ..., "idle_s": ...})``, then per group ``("write", seq,
urgent, [(ttl_ns, queued_ns, size), ...])`` followed by the group's ``SpanBuffer`` chunks as they
are, ``size`` bytes each (no frame around them: the server writes them uncopied); frames out:
``("ready", pid)`` or ``("failed", reason)``, then ``("written", seq, error | None, unavailable,
folded)`` per group (``folded``: the log held nothing older than the group once it was acked).
The server sends the next group once this one is acked. It exits when stdin closes (the server
shut down or died), after logging what it read.

It runs under ``SCHED_IDLE`` (all its threads: the SQLite writer thread inherits it): while
requests keep every core busy it gets next to no CPU, and the server's backlog takes up the lag.
An ``urgent`` group (a read is waiting for it: ``SpanWriterProcess.sync``) folds the log and is
written straight through, at normal priority where the process may switch back. Linux lets an
unprivileged process leave ``SCHED_IDLE`` only if ``RLIMIT_NICE`` allows nice 0 (the default
limit, 0, does not); with ``CAP_SYS_NICE`` (root, though Docker does not grant it by default) it
may. Where it may not, a read waits until the log is folded at idle priority: at once on idle
cores, and behind the requests on busy ones. Before each group and each slice of a fold it also
steps off the CPU the server last ran on, within the CPUs it inherited (``placement``).
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
from .span_log import SpanLog, group_rows, write_rows

log = logging.getLogger("polystack.span_writer")

#: seconds a failed background fold waits before the next (a read's fold is tried at once)
FOLD_RETRY_S = 10.0


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


async def _read_groups(reader: asyncio.StreamReader, groups: asyncio.Queue) -> None:
    """Queue each group as it arrives ``(seq, urgent, [(ttl_ns, queued_ns, payload), ...])``; None
    once the server closed its side (or went away mid-group: that group was not acknowledged)."""
    try:
        while (message := await read_frame(reader)) is not None:
            _, seq, urgent, heads = message
            try:
                batches = [(ttl_ns, queued_ns, await reader.readexactly(size)) for ttl_ns, queued_ns, size in heads]
            except asyncio.IncompleteReadError:
                break
            await groups.put((seq, urgent, batches))
    finally:
        await groups.put(None)


async def serve(acks: int) -> int:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin.buffer)
    opening = await read_frame(reader)
    if opening is None:  # the server went away before sending the config
        return 0
    _, store_config, options = opening  # when to fold though no read waits
    try:
        store = await sqlstore_from_config(TypeAdapter(StoreConfig).validate_python(store_config))
    except Exception as exc:  # noqa: BLE001 - any reason not to start is the server's to log
        _ack(acks, ("failed", f"{type(exc).__name__}: {exc}"))
        return 1
    # started at normal priority (the server waits for "ready"); from now on its threads, the
    # store's included, take only the CPU nothing else wants
    priority = Priority(lowest_priority())
    away = AwayFromServer(os.getppid())
    span_log = SpanLog(store)
    _ack(acks, ("ready", os.getpid()))
    groups: asyncio.Queue = asyncio.Queue()
    reading = loop.create_task(_read_groups(reader, groups))
    try:
        folding = True  # what a writer before this one left, if anything
        retry_at = 0.0  # after a failed fold, none but a read's until then
        while True:
            # a slice at a time, and a group that came meanwhile before the next
            if folding and groups.empty() and time.monotonic() >= retry_at:
                away.step()
                try:
                    folding = not await span_log.fold_slice()
                except Exception:  # noqa: BLE001 - the log stays as it is: a later fold takes it up
                    log.exception("folding the span log failed; trying again in %.0f s", FOLD_RETRY_S)
                    folding, retry_at = False, time.monotonic() + FOLD_RETRY_S
                continue
            try:
                # quiet for IDLE_S with something logged: the server is idle, time to fold
                group = await asyncio.wait_for(groups.get(), options["idle_s"] if span_log.oldest_ns is not None else None)
            except TimeoutError:
                folding = True
                continue
            if group is None:
                break
            seq, urgent, batches = group
            away.step()
            with priority.urgent(urgent):
                try:
                    if urgent:  # a read waits: the log folded whole, then this group, straight through
                        await span_log.fold(pause_s=0)
                        await write_rows(store, group_rows(batches), 0)
                    else:
                        await span_log.append(batches)
                    _ack(acks, ("written", seq, None, False, urgent))
                except ServiceUnavailableError as exc:  # the database is away for a while: the server logs it
                    _ack(acks, ("written", seq, str(exc), True, False))
                except Exception as exc:
                    log.exception("a group of %d span batches failed", len(batches))
                    _ack(acks, ("written", seq, f"{type(exc).__name__}: {exc}", False, False))
            folding = folding or span_log.due(options["fold_bytes"])
    finally:
        reading.cancel()
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
