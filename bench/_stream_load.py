"""Many SSE streams held open through `polystack run`, and one client that stops reading.

Shared by bench/held_streams.py (1,000 streams, the figures in
docs/reliability.md) and tests/server/test_held_streams.py (fewer, in CI).

- ``HoldingUpstream``: a test double of an OpenAI-compatible upstream on a
  loopback port (aiohttp). A chat stream sends its first chunks, then waits
  until ``release()``, then ends; a request whose model is ``large`` streams
  ``large_bytes`` of content as fast as the connection takes it, counting the
  bytes its writes got past (``large_sent``).
- ``polystack``: a ``polystack run`` subprocess whose remote::openai provider
  points at the upstream.
- ``hold_streams``: opens N streams at once, waits until every one has its first
  chunk, measures the server's RSS, releases them and reads each to [DONE].
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import psutil
from aiohttp import web

ROOT = Path(__file__).resolve().parent.parent


def _event(payload: dict) -> bytes:
    return b"data: " + json.dumps(payload, separators=(",", ":")).encode() + b"\n\n"


def chunk(content: str | None = None, finish: str | None = None, role: str | None = None) -> bytes:
    delta = {k: v for k, v in (("role", role), ("content", content)) if v is not None}
    return _event({"id": "chatcmpl-load", "object": "chat.completion.chunk", "created": 1700000000,
                   "model": "load-upstream", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})


@dataclass
class HoldingUpstream:
    """See the module docstring. A test double, never a distribution's default."""

    large_bytes: int = 256 * 1024 * 1024
    large_piece: int = 16 * 1024
    port: int = 0
    held: int = 0  # streams waiting for release()
    finished: int = 0
    large_sent: int = 0
    large_closed: bool = False  # the proxy dropped the large stream's connection
    _release: asyncio.Event = field(default_factory=asyncio.Event)
    _runner: web.AppRunner | None = None

    async def start(self) -> HoldingUpstream:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._chat)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=0.1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, backlog=4096)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def release(self) -> None:
        self._release.set()

    def hold(self) -> None:
        """Hold the streams that start from now on until the next ``release``."""
        self._release.clear()

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        if not body.get("stream"):  # the warm-up's requests
            return web.json_response({
                "id": "chatcmpl-load", "object": "chat.completion", "created": 1700000000, "model": body["model"],
                "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello"}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}})
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        if body["model"] == "load-large":
            return await self._large(response)
        await response.write(chunk("Hel", role="assistant"))
        self.held += 1
        try:
            await self._release.wait()
        finally:
            self.held -= 1
        await response.write(chunk("lo"))
        await response.write(chunk(finish="stop"))
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        self.finished += 1
        return response

    async def _large(self, response: web.StreamResponse) -> web.StreamResponse:
        piece = chunk("x" * self.large_piece)
        try:
            await response.write(chunk("", role="assistant"))
            while self.large_sent < self.large_bytes:
                await response.write(piece)  # waits while the proxy does not read
                self.large_sent += len(piece)
            await response.write(chunk(finish="stop") + b"data: [DONE]\n\n")
            await response.write_eof()
        except ConnectionError:  # the proxy hung up: what a client that leaves must cause
            self.large_closed = True
        except asyncio.CancelledError:
            self.large_closed = True
            raise
        return response


RUN_YAML = """\
version: '2'
image_name: held-streams
apis: [inference]
providers:
  inference:
  - provider_id: upstream
    provider_type: remote::openai
    config:
      url: {url}
      api_key: load
      max_connections: 0
      read_timeout: 600
models:
- model_id: held
  provider_id: upstream
  provider_model_id: load-held
  model_type: llm
- model_id: large
  provider_id: upstream
  provider_model_id: load-large
  model_type: llm
"""


@contextlib.contextmanager
def polystack(upstream_url: str) -> Iterator[tuple[str, psutil.Process]]:
    """(base URL, process) of a `polystack run` (this checkout's code) proxying to ``upstream_url``."""
    from tests.support import ServerProcess

    with tempfile.TemporaryDirectory() as scratch:
        home = Path(scratch)
        config = home / "run.yaml"
        config.write_text(RUN_YAML.format(url=upstream_url))
        server = ServerProcess(str(config), home=home, pythonpath=[ROOT]).start(timeout=60)
        try:
            yield server.base_url, psutil.Process(server.proc.pid)
        finally:
            server.stop()


def rss(process: psutil.Process) -> int:
    return process.memory_info().rss


def _body(model: str) -> dict:
    return {"model": model, "stream": True, "messages": [{"role": "user", "content": "hi"}]}


@dataclass
class HeldResult:
    streams: int
    completed: int  # streams read to [DONE] with the whole text
    errors: list[str]
    rss_before: int
    rss_held: int
    rss_after: int
    open_seconds: float  # until every stream had its first chunk

    @property
    def rss_per_stream(self) -> float:
        return (self.rss_held - self.rss_before) / self.streams


async def hold_streams(base: str, process: psutil.Process, upstream: HoldingUpstream, streams: int,
                       *, timeout: float = 300.0) -> HeldResult:
    """Open ``streams`` streams at once, hold them all, then let them finish."""
    connector = aiohttp.TCPConnector(limit=0)
    errors: list[str] = []
    firsts = 0
    all_first = asyncio.Event()
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=timeout)) as session:
        for _ in range(3):  # warm-up: imports, pools, caches
            await _warm(session, base)
        rss_before = rss(process)
        upstream.hold()

        async def one() -> bool:
            nonlocal firsts

            def first() -> None:
                nonlocal firsts
                firsts += 1
                if firsts == streams:
                    all_first.set()

            try:
                return await _one(session, base, first)
            except Exception as exc:  # noqa: BLE001 - counted and reported
                errors.append(f"{type(exc).__name__}: {exc}")
                return False

        started = time.monotonic()
        tasks = [asyncio.create_task(one()) for _ in range(streams)]
        waiter = asyncio.create_task(all_first.wait())
        await asyncio.wait([waiter, *tasks], timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        # either all are held, or some failed: wait for the rest to be held or done
        while not all_first.is_set() and sum(t.done() for t in tasks) + firsts < streams:
            await asyncio.sleep(0.05)
        open_seconds = time.monotonic() - started
        rss_held = rss(process)
        upstream.release()
        results = await asyncio.gather(*tasks)
        waiter.cancel()
        rss_after = rss(process)
    return HeldResult(streams, sum(results), errors, rss_before, rss_held, rss_after, open_seconds)


async def _one(session: aiohttp.ClientSession, base: str, on_first) -> bool:
    """One stream of ``held``: True when it carried 'Hello' and ended with [DONE]."""
    text, done = "", False
    async with session.post(base + "/v1/chat/completions", json=_body("held")) as response:
        if response.status != 200:
            raise RuntimeError(f"HTTP {response.status}: {(await response.text())[:200]}")
        async for line in response.content:
            if not line.startswith(b"data: "):
                continue
            data = line[6:].strip()
            if data == b"[DONE]":
                done = True
                break
            event = json.loads(data)
            if "error" in event:
                raise RuntimeError(f"error event: {event['error']['message']}")
            piece = event["choices"][0]["delta"].get("content") if event["choices"] else None
            if piece and not text:
                on_first()
            text += piece or ""
    return done and text == "Hello"


async def _warm(session: aiohttp.ClientSession, base: str) -> None:
    body = {**_body("held"), "stream": False}
    async with session.post(base + "/v1/chat/completions", json=body) as response:
        if response.status != 200:
            raise RuntimeError(f"warm-up: HTTP {response.status}: {(await response.text())[:200]}")


@dataclass
class SlowReaderResult:
    upstream_bytes: int  # what the upstream's writes got past while the client did not read
    large_total: int
    rss_before: int
    rss_stalled: int
    upstream_closed: bool  # the proxy dropped the upstream stream once the client went away
    sent_by_close: int  # what the upstream had sent when the proxy dropped it


async def slow_reader(base: str, process: psutil.Process, upstream: HoldingUpstream,
                      *, settle: float = 1.0, timeout: float = 120.0) -> SlowReaderResult:
    """A client reads the first event of a large stream and then stops reading.

    Waits until the upstream has sent nothing more for ``settle`` seconds (the
    bytes in flight fill every buffer on the way and the writes block), then
    notes how much it sent and the server's RSS, and hangs up.
    """
    upstream.large_sent, upstream.large_closed = 0, False
    rss_before = rss(process)
    reader, writer = await asyncio.open_connection("127.0.0.1", int(base.rsplit(":", 1)[1]))
    body = json.dumps(_body("large")).encode()
    writer.write(b"POST /v1/chat/completions HTTP/1.1\r\nHost: polystack\r\nContent-Type: application/json\r\n"
                 b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
    await writer.drain()
    # a small receive window: read the head and the first event, then nothing
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    head = await asyncio.wait_for(reader.readuntil(b"data: "), timeout)
    if b" 200 " not in head.split(b"\r\n", 1)[0]:
        raise RuntimeError(f"the large stream did not start: {head[:200]!r}")
    writer.transport.pause_reading()  # stop reading: the kernel buffers fill, then the server's send waits
    deadline = time.monotonic() + timeout
    last, still_since = -1, time.monotonic()
    while time.monotonic() < deadline:
        await asyncio.sleep(0.1)
        if upstream.large_sent != last:
            last, still_since = upstream.large_sent, time.monotonic()
        elif time.monotonic() - still_since >= settle:
            break
    sent = upstream.large_sent
    rss_stalled = rss(process)
    writer.close()
    with contextlib.suppress(ConnectionError):
        await writer.wait_closed()
    for _ in range(100):  # the proxy notices the hang-up and closes the upstream stream
        if upstream.large_closed:
            break
        await asyncio.sleep(0.1)
    return SlowReaderResult(sent, upstream.large_bytes, rss_before, rss_stalled, upstream.large_closed,
                            upstream.large_sent)
