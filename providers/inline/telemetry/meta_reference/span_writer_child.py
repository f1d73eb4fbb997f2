"""The span writer process: reads batches of spans from stdin, writes them to the span store as
chunk rows (``sinks.chunk_rows``) with a store of its own, and acks each on stdout.

Started by ``span_writer.SpanWriterProcess`` as ``python -m`` this module. Frames in
(``frames.py``): first ``("open", store_config)``, then ``(seq, spans, ttl_ns)``; frames out:
``("ready", pid)`` or ``("failed", reason)``, then ``(seq, error | None, unavailable)`` per batch.
It exits when stdin closes (the server shut down or died), after writing what it read.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys

from pydantic import TypeAdapter

from stack.errors import ServiceUnavailableError
from stack.storage import StoreConfig, sqlstore_from_config

from .frames import read_frame, write_frame
from .sinks import CHUNK_KEY, chunk_rows

log = logging.getLogger("polystack.span_writer")


def _ack(fd: int, value: tuple) -> None:
    # the server gone: what it sent before is still written (up to stdin's end), unacknowledged
    with contextlib.suppress(BrokenPipeError):
        write_frame(fd, value)


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
    _ack(acks, ("ready", os.getpid()))
    try:
        while (batch := await read_frame(reader)) is not None:
            seq, spans, ttl_ns = batch
            try:
                await store.upsert_many("span_chunks", chunk_rows(spans, ttl_ns), CHUNK_KEY)
                _ack(acks, (seq, None, False))
            except ServiceUnavailableError as exc:  # the database is away for a while: the server logs it
                _ack(acks, (seq, str(exc), True))
            except Exception as exc:
                log.exception("a batch of %d spans failed", len(spans))
                _ack(acks, (seq, f"{type(exc).__name__}: {exc}", False))
    finally:
        await store.close()
    return 0


def main() -> None:
    # a Ctrl-C in the server's terminal is the server's to handle: it sends what is buffered,
    # then closes stdin, and this process exits after writing it
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # background work: when the cores are all busy, requests go first; the collector's buffer takes
    # up the lag (full, it drops the oldest spans and counts them)
    os.nice(10)
    acks = os.dup(1)
    os.dup2(2, 1)  # a stray print goes to the server's log, never into the acks
    logging.basicConfig(level=logging.WARNING, format="span writer %(process)d: %(levelname)s %(name)s: %(message)s")
    sys.exit(asyncio.run(serve(acks)))


if __name__ == "__main__":
    main()
