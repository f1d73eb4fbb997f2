"""The server's side of the span writer process (``span_writer_child.py``).

Why a process: writing a batch of spans is Python-level work (a row per trace, then the store's
statement building) that, done in a thread, holds the GIL against the event loop; with two cores
that cost every request ~35 µs of CPU. Here the server's share of a batch is one ``marshal``
call and a pipe write; the child does the rest on another core.

``write`` returns once the child acked the batch: the rows are then in the database, as they
are after an in-process write, so flush-then-read keeps working.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stack.storage import StorageError, StorageUnavailableError

from .frames import frame, read_frame

log = logging.getLogger(__name__)

CHILD_MODULE = "providers.inline.telemetry.meta_reference.span_writer_child"
#: the source tree holding ``providers``: the child imports this code, not another install's
_SOURCE_ROOT = str(Path(__file__).resolve().parents[4])


class WriterUnavailable(Exception):
    """The writer process could not start: its batches are to be written in-process."""


@dataclass(eq=False)
class _Child:
    proc: asyncio.subprocess.Process
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    pending: dict[int, asyncio.Future] = field(default_factory=dict)
    dead: bool = False
    failure: str | None = None  # why it could not start, as it said
    reader: asyncio.Task | None = None


class SpanWriterProcess:
    """A child process writing span batches to the store ``store_config`` describes (a dump of a
    ``StoreConfig`` naming a file or server, never ':memory:'). Batches sent before it is ready
    wait in the pipe; one that dies is restarted, its batch in flight failed as unavailable
    (the collector counts it in ``failed_batches``); one that cannot start makes ``write``
    raise ``WriterUnavailable`` for good."""

    def __init__(self, store_config: dict[str, Any], *, command: list[str] | None = None,
                 close_timeout: float = 10.0) -> None:
        self.store_config = store_config
        self.command = command or [sys.executable, "-m", CHILD_MODULE]
        self.close_timeout = close_timeout
        self.restarts = 0
        self._child: _Child | None = None
        self._unavailable: str | None = None
        self._closing = False
        self._seq = 0
        self._spawning = asyncio.Lock()

    @property
    def pid(self) -> int | None:
        return None if self._child is None else self._child.proc.pid

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
                self._unavailable = f"cannot run {self.command[0]}: {exc}"
                raise WriterUnavailable(self._unavailable) from exc
            child = _Child(proc)
            proc.stdin.write(frame(("open", self.store_config)))
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

    async def write(self, spans: list[tuple], ttl_ns: int | None) -> None:
        """Have the child write ``spans`` (``tracing.SpanTuple``s; ``sinks.chunk_rows``'s ``ttl_ns``);
        returns once they are stored."""
        if self._child is None:  # the last one died: its successor
            await self.start()
        child = self._child
        if child is None or child.dead:  # closing, or it died while this waited for the lock
            raise StorageUnavailableError("the span writer process is not running")
        self._seq += 1
        # ValueError for a value marshal cannot write (a str subclass, say): nothing sent, the caller decides
        payload = frame((self._seq, spans, ttl_ns))  # a NamedTuple would be refused: plain tuples
        acked = asyncio.get_running_loop().create_future()
        child.pending[self._seq] = acked
        child.proc.stdin.write(payload)
        # a child that died takes its pipe with it: the ack reader then fails ``acked``
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            await child.proc.stdin.drain()
        await acked

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
            self._unavailable = (f"the span writer process exited with code {code} before it was ready"
                                 + (f": {child.failure}" if child.failure else " (its error is in the log above)"))
            error: Exception = WriterUnavailable(self._unavailable)
        else:
            error = StorageUnavailableError(f"the span writer process exited with code {code} before "
                                            "acknowledging this batch (restarted)")
        for acked in child.pending.values():
            if not acked.done():
                acked.set_exception(error)
        child.pending.clear()
        if child.ready.is_set() and not self._closing:
            log.warning("span writer process %d exited with code %s; starting another", child.proc.pid, code)
            self.restarts += 1
            # one that cannot start: the next write falls back to writing in-process, and logs it
            with contextlib.suppress(WriterUnavailable):
                await self.start()

    @staticmethod
    def _take(child: _Child, message: tuple) -> None:
        if message[0] == "ready":
            child.ready.set()
        elif message[0] == "failed":
            child.failure = message[1]
        else:
            seq, error, unavailable = message
            acked = child.pending.pop(seq, None)
            if acked is None or acked.done():
                return
            if error is None:
                acked.set_result(None)
            else:
                acked.set_exception((StorageUnavailableError if unavailable else StorageError)(error))

    async def close(self) -> None:
        """Let the child write what it was sent and exit (killed after ``close_timeout`` seconds)."""
        self._closing = True
        async with self._spawning:  # a restart in progress finishes first
            child, self._child = self._child, None
        if child is None:
            return
        if not child.ready.is_set() and not child.pending:  # still starting, nothing sent: nothing to wait for
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
