"""A lean HTTP/1.1 client: keep-alive connection pools over asyncio protocols.

``UpstreamClient`` (http.py) sends every upstream call through ``HTTP1Client``.
It does what a proxy's upstream call needs and nothing else: one write of the
request, httptools (llhttp) parsing the answer, a keep-alive pool per origin,
content-length, chunked and read-to-close bodies, gzip/deflate, TLS, a connect
timeout and a read timeout (no byte for ``read_timeout`` seconds), and flow
control so a stream nobody reads does not buffer without bound. There are no
cookies, proxies or auth helpers (upstream calls use none); aiohttp's client did
all that on every request and was ~30 % of a proxied request's CPU (measured,
docs/performance.md).

Retries and error messages are the caller's; this module raises the
``TransportError`` kinds below. Its one retry of its own: a pooled connection
the upstream closed while idle, found out before any byte of the answer came,
is replaced by a new one and the request sent again (the request was not read).

A connection goes back to the pool only when its answer was read to the end
and both sides keep it alive; one that errored, timed out or was half-read is
closed.
"""

from __future__ import annotations

import asyncio
import collections
import ssl
import zlib
from collections.abc import Callable, Mapping
from urllib.parse import quote, urljoin, urlsplit

import httptools

__all__ = [
    "BrokenResponse", "CertificateError", "ConnectError", "ConnectTimeout", "Disconnected", "HTTP1Client",
    "InvalidHeader", "ReadTimeout", "Response", "TLSError", "TransportError",
]

#: a stream's unread bytes above which the upstream socket stops being read (and below which it resumes)
_HIGH_WATER = 256 * 1024
_LOW_WATER = 64 * 1024
_MAX_REDIRECTS = 10
_REDIRECTS = frozenset((301, 302, 303, 307, 308))


class TransportError(Exception):
    """Any failure of a request at the transport level."""


class ConnectError(TransportError):
    """No connection could be opened; ``os_error`` says why."""

    def __init__(self, os_error: OSError) -> None:
        super().__init__(str(os_error))
        self.os_error = os_error


class ConnectTimeout(TransportError):
    """Opening the connection (TCP and TLS) took longer than the connect timeout."""


class CertificateError(TransportError):
    """The upstream's TLS certificate was not accepted."""


class TLSError(TransportError):
    """The TLS handshake failed for another reason."""


class Disconnected(TransportError):
    """The upstream closed the connection before sending any byte of the answer."""


class ReadTimeout(TransportError):
    """No byte came from the upstream for ``read_timeout`` seconds while an answer was due."""


class BrokenResponse(TransportError):
    """The answer was cut off midway or is not HTTP."""


class InvalidHeader(ValueError):
    """A header that would break the request's framing (a line break in it)."""


class _Origin:
    """Where one pool connects: scheme, host, port and the TLS context."""

    __slots__ = ("scheme", "host", "port", "ssl", "host_header", "key")

    def __init__(self, scheme: str, host: str, port: int | None, tls: ssl.SSLContext | None) -> None:
        if scheme not in ("http", "https"):
            raise ValueError(f"unsupported URL scheme {scheme!r} (http or https)")
        default = 443 if scheme == "https" else 80
        self.scheme = scheme
        self.host = host
        self.port = port or default
        self.ssl = tls if scheme == "https" else None
        name = f"[{host}]" if ":" in host else host
        self.host_header = name if self.port == default else f"{name}:{self.port}"
        self.key = (scheme, host, self.port)


def _target(parts) -> str:
    """The request target (path and query) of a split URL, percent-encoded where it is not."""
    target = parts.path or "/"
    if parts.query:
        target = f"{target}?{parts.query}"
    if not target.isascii() or " " in target:
        target = quote(target, safe="/?&=%:@!$'()*+,;~-._#[]")
    return target


class _Connection(asyncio.Protocol):
    """One keep-alive connection: sends a request, parses its answer, buffers the body for the reader."""

    def __init__(self, pool: _Pool) -> None:
        self._pool = pool
        self._loop = pool.loop
        self._read_timeout = pool.read_timeout
        self.transport: asyncio.Transport | None = None
        self._parser: httptools.HttpResponseParser | None = httptools.HttpResponseParser(self)
        self.closed = False             # the transport is gone
        self.counted = False            # it holds one of the pool's ``limit`` slots
        self.idle_since = 0.0
        # the answer in progress
        self._busy = False
        self._received = False          # any byte of this answer came
        self._head: asyncio.Future | None = None
        self.status = 0
        self.reason = ""
        self.headers: dict[str, str] = {}
        self._until_close = False       # the body ends when the connection does
        self._keep_alive = False
        self._decoder = None
        self._chunks: collections.deque[bytes] = collections.deque()
        self._buffered = 0
        self._complete = False
        self._error: TransportError | None = None
        self._waiter: asyncio.Future | None = None
        self._paused = False
        self._timer: asyncio.TimerHandle | None = None
        self._last = 0.0

    # -- asyncio.Protocol ----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if not self._busy:  # an idle connection has nothing to say: it is no longer usable
            self._close()
            return
        self._received = True
        if self._read_timeout is not None:
            self._last = self._loop.time()
        try:
            self._parser.feed_data(data)  # type: ignore[union-attr]
        except httptools.HttpParserUpgrade:
            self._fail(BrokenResponse("the upstream switched protocols"))
        except httptools.HttpParserError as exc:
            self._fail(BrokenResponse(f"not an HTTP/1.1 answer: {exc}"))

    def eof_received(self) -> bool:
        return False  # close the transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._parser = None  # it refers back to this object
        self._disarm()
        if self._busy and not self._complete and self._error is None:
            if self._until_close and self._head is not None and self._head.done():
                self._finish()  # a body without a length ends with the connection
            elif not self._received:
                self._fail(Disconnected(f"the connection was closed before the answer{_why(exc)}"))
            else:
                self._fail(BrokenResponse(f"the connection was closed midway through the answer{_why(exc)}"))
        self._pool.lost(self)

    def pause_writing(self) -> None:  # request bodies are written whole; nothing waits on the drain
        pass

    def resume_writing(self) -> None:
        pass

    # -- httptools callbacks -------------------------------------------------------------

    def on_message_begin(self) -> None:
        if self._head is None or self._head.done():  # a second answer to one request
            self._fail(BrokenResponse("the upstream sent more than one answer"))

    def on_status(self, status: bytes) -> None:
        self.reason += status.decode("latin-1")

    def on_header(self, name: bytes, value: bytes) -> None:
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1")
        old = self.headers.get(key)
        self.headers[key] = text if old is None else f"{old}, {text}"

    def on_headers_complete(self) -> None:
        parser = self._parser
        status = parser.get_status_code()  # type: ignore[union-attr]
        if status < 200:  # 1xx: an interim answer; the real one follows
            self.headers = {}
            self.reason = ""
            return
        self.status = status
        headers = self.headers
        # asked now: llhttp resets what it knows of the message once the message is complete
        self._keep_alive = parser.should_keep_alive()  # type: ignore[union-attr]
        self._until_close = ("content-length" not in headers and "transfer-encoding" not in headers
                             and status not in (204, 304))
        coding = headers.get("content-encoding")
        if coding is not None:
            coding = coding.strip().lower()
            if coding in ("gzip", "x-gzip"):
                self._decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)
            elif coding == "deflate":
                self._decoder = _Deflate()
        head = self._head
        if head is not None and not head.done():
            head.set_result(None)

    def on_body(self, body: bytes) -> None:
        if self._decoder is not None:
            try:
                body = self._decoder.decompress(body)
            except zlib.error as exc:
                self._fail(BrokenResponse(f"the {self.headers.get('content-encoding')} body does not decode: {exc}"))
                return
            if not body:
                return
        self._chunks.append(body)
        self._buffered += len(body)
        if self._buffered > _HIGH_WATER and not self._paused and self.transport is not None:
            self._paused = True
            self.transport.pause_reading()
        self._wake()

    def on_message_complete(self) -> None:
        if self.status == 0:  # the end of a 1xx
            return
        self._finish()

    # -- the answer's life ---------------------------------------------------------------

    def _finish(self) -> None:
        if self._decoder is not None:
            try:
                rest = self._decoder.flush()
            except zlib.error as exc:
                self._fail(BrokenResponse(f"the compressed body does not decode: {exc}"))
                return
            if rest:
                self._chunks.append(rest)
                self._buffered += len(rest)
        self._complete = True
        self._disarm()
        self._wake()

    def _fail(self, error: TransportError) -> None:
        """The answer in progress fails with ``error``; the connection is done for."""
        if self._error is None and not self._complete:
            self._error = error
            head = self._head
            if head is not None and not head.done():
                head.set_exception(error)
                head.exception()  # retrieved here: the reader may have gone
            self._wake()
        self._close()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    def _close(self) -> None:
        self._disarm()
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()

    def _arm(self) -> None:
        if self._read_timeout is not None:
            self._last = self._loop.time()
            self._timer = self._loop.call_at(self._last + self._read_timeout, self._on_timer)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _on_timer(self) -> None:
        """No byte for read_timeout seconds fails the answer, unless the reader is the one not reading."""
        self._timer = None
        if not self._busy or self._complete or self._error is not None:
            return
        now = self._loop.time()
        timeout = self._read_timeout
        if self._paused:
            self._timer = self._loop.call_at(now + timeout, self._on_timer)
        elif now - self._last >= timeout:
            self._fail(ReadTimeout(f"no data for {timeout}s"))
        else:
            self._timer = self._loop.call_at(self._last + timeout, self._on_timer)

    def begin(self, data: bytes) -> asyncio.Future:
        """Send one request; the future is done when the answer's head is in."""
        self._busy = True
        self._received = False
        self._complete = False
        self._error = None
        self.status = 0
        self.reason = ""
        self.headers = {}
        self._until_close = False
        self._keep_alive = False
        self._decoder = None
        self._chunks.clear()
        self._buffered = 0
        self._head = head = self._loop.create_future()
        self.transport.write(data)  # type: ignore[union-attr]
        self._arm()
        return head

    def reusable(self) -> bool:
        """Whether this connection can carry the next request (its answer was read to the end)."""
        return (self._complete and self._keep_alive and not self._chunks and self._error is None
                and not self.closed and not self.transport.is_closing())  # type: ignore[union-attr]

    def idle(self) -> None:
        self._busy = False
        self._head = None
        self.idle_since = self._loop.time()

    # -- reading the body ----------------------------------------------------------------

    def take(self) -> bytes | None:
        """What is buffered of the body now (b"" at its end), or None: nothing yet, wait."""
        chunks = self._chunks
        if chunks:
            data = chunks.popleft() if len(chunks) == 1 else b"".join(_drain(chunks))
            self._buffered = 0
            if self._paused:
                self._paused = False
                if self.transport is not None:
                    self._last = self._loop.time()  # the silence was ours, not the upstream's
                    self.transport.resume_reading()
            return data
        if self._complete:
            return b""
        if self._error is not None:
            raise self._error
        return None

    async def wait(self) -> None:
        self._waiter = waiter = self._loop.create_future()
        await waiter


def _drain(chunks: collections.deque[bytes]):
    while chunks:
        yield chunks.popleft()


def _why(exc: Exception | None) -> str:
    return f" ({type(exc).__name__}: {exc})" if exc is not None else ""


class _Deflate:
    """``Content-Encoding: deflate``: zlib-wrapped as the RFC says, or raw as some servers send it."""

    def __init__(self) -> None:
        self._inner = None
        self._first = b""

    def decompress(self, data: bytes) -> bytes:
        if self._inner is None:
            self._first += data
            if len(self._first) < 2:
                return b""
            zlib_header = (self._first[0] & 0x0F) == 8 and (self._first[0] << 8 | self._first[1]) % 31 == 0
            self._inner = zlib.decompressobj(zlib.MAX_WBITS if zlib_header else -zlib.MAX_WBITS)
            data, self._first = self._first, b""
        return self._inner.decompress(data)

    def flush(self) -> bytes:
        if self._inner is None:
            return zlib.decompressobj(-zlib.MAX_WBITS).decompress(self._first) if self._first else b""
        return self._inner.flush()


class _Pool:
    """The connections to one origin: at most ``limit`` open (0: no limit), idle ones kept ``keepalive`` seconds."""

    def __init__(self, origin: _Origin, *, limit: int, keepalive: float, connect_timeout: float | None,
                 read_timeout: float | None) -> None:
        self.origin = origin
        self.loop = asyncio.get_running_loop()
        self.limit = limit if limit > 0 else float("inf")  # 0: unlimited (max_connections: 0)
        self.keepalive = keepalive
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self._idle: list[_Connection] = []   # most recently used last
        self._open = 0                        # connected or connecting
        self._waiters: collections.deque[asyncio.Future] = collections.deque()
        self._sweeper: asyncio.TimerHandle | None = None
        self.closed = False

    async def acquire(self, *, fresh: bool = False) -> tuple[_Connection, bool]:
        """A connection for one request, and whether it was used before."""
        while True:
            if self.closed:
                raise TransportError("the HTTP client is closed")
            if not fresh:
                idle = self._idle
                while idle:
                    conn = idle.pop()
                    if (not conn.closed and not conn.transport.is_closing()  # type: ignore[union-attr]
                            and self.loop.time() - conn.idle_since < self.keepalive):
                        return conn, True
                    self._drop(conn)
            if self._open < self.limit:
                self._open += 1
                try:
                    conn = await self._connect()
                except BaseException:
                    self._open -= 1
                    self._wake_one()
                    raise
                conn.counted = True
                return conn, False
            if fresh and self._idle:  # make room: an idle connection is the one to give up
                self._drop(self._idle.pop(0))
                continue
            waiter = self.loop.create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            except BaseException:
                if waiter.done() and not waiter.cancelled():
                    self._wake_one()  # we were woken but go: pass it on
                else:
                    self._waiters.remove(waiter)
                raise

    async def _connect(self) -> _Connection:
        o = self.origin
        conn = _Connection(self)
        try:
            async with asyncio.timeout(self.connect_timeout):
                await self.loop.create_connection(lambda: conn, o.host, o.port, ssl=o.ssl,
                                                  server_hostname=o.host if o.ssl is not None else None)
        except ssl.SSLCertVerificationError as exc:
            raise CertificateError(str(exc)) from None
        except ssl.SSLError as exc:
            raise TLSError(str(exc)) from None
        except TimeoutError:
            raise ConnectTimeout(f"connect timed out after {self.connect_timeout}s") from None
        except OSError as exc:
            raise ConnectError(exc) from None
        return conn

    def release(self, conn: _Connection) -> None:
        """``conn`` is done with its request: kept for the next one, or closed."""
        if not self.closed and conn.reusable():
            conn.idle()
            self._idle.append(conn)
            if self._sweeper is None:
                self._sweeper = self.loop.call_later(self.keepalive, self._sweep)
        else:
            self._drop(conn)
        self._wake_one()

    def _drop(self, conn: _Connection) -> None:
        """Close ``conn`` and free its slot (once, whoever gets there first)."""
        conn._close()
        if conn.counted:
            conn.counted = False
            self._open -= 1

    def lost(self, conn: _Connection) -> None:
        """The transport of ``conn`` closed (our doing or the upstream's); an idle one leaves the pool."""
        if conn in self._idle:
            self._idle.remove(conn)
            self._drop(conn)
            self._wake_one()

    def _wake_one(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def _sweep(self) -> None:
        """Close the connections idle for longer than ``keepalive``."""
        self._sweeper = None
        now = self.loop.time()
        keep = []
        for conn in self._idle:
            if now - conn.idle_since >= self.keepalive:
                self._drop(conn)
            else:
                keep.append(conn)
        self._idle = keep
        if keep:
            self._sweeper = self.loop.call_at(min(c.idle_since for c in keep) + self.keepalive, self._sweep)
        self._wake_one()

    def close(self) -> None:
        self.closed = True
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        idle, self._idle = self._idle, []
        for conn in idle:
            self._drop(conn)
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)  # wakes to find the pool closed


class Response:
    """The answer to one request: status, reason, headers (lower-case names), url, and the body to read.

    Read the body with ``read`` or ``read_chunk``, then ``release`` (the
    connection goes back to the pool if the body was read to the end) or
    ``close`` (the connection is closed).
    """

    __slots__ = ("status", "reason", "headers", "url", "_conn", "_pool")

    def __init__(self, conn: _Connection, pool: _Pool, url: str) -> None:
        self.status = conn.status
        self.reason = conn.reason
        self.headers = conn.headers
        self.url = url
        self._conn: _Connection | None = conn
        self._pool = pool

    async def read_chunk(self) -> bytes:
        """The body's next bytes as they arrive (all that is buffered); b"" at the end."""
        conn = self._conn
        if conn is None:
            return b""
        while True:
            data = conn.take()
            if data is not None:
                return data
            await conn.wait()

    async def read(self, limit: int | None = None) -> bytes:
        """The body to its end, or its first ``limit`` bytes."""
        parts = []
        size = 0
        while limit is None or size < limit:
            data = await self.read_chunk()
            if not data:
                break
            parts.append(data)
            size += len(data)
        body = parts[0] if len(parts) == 1 else b"".join(parts)
        return body if limit is None else body[:limit]

    def release(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            self._pool.release(conn)

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn._close()
            self._pool.release(conn)

    def __del__(self) -> None:  # an answer dropped unread must not hold its pool slot
        if self._conn is not None:
            self.close()


class HTTP1Client:
    """Requests to absolute http(s) URLs over pooled keep-alive connections.

    ``tls`` makes the context for https origins (called once, at the first:
    loading the system's CA certificates takes a while and plain-http
    upstreams never need them); ``limit`` bounds the open
    connections of each origin (an upstream client talks to one, and to where
    it redirects).
    """

    def __init__(self, *, tls: Callable[[], ssl.SSLContext], limit: int, keepalive: float, connect_timeout: float | None,
                 read_timeout: float | None, headers: Mapping[str, str]) -> None:
        self._make_tls = tls
        self._tls: ssl.SSLContext | None = None
        self._limit = limit
        self._keepalive = keepalive
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._pools: dict[tuple, _Pool] = {}
        self._urls: dict[str, tuple[_Origin, str]] = {}
        defaults = {"accept": ("Accept", "*/*"), "accept-encoding": ("Accept-Encoding", "gzip, deflate")}
        for name, value in headers.items():
            defaults[name.lower()] = (name, value)
        for name, value in defaults.values():
            _check_header(name, value)
        self._defaults = defaults
        self._default_lines = "".join(f"{n}: {v}\r\n" for n, v in defaults.values())
        self.closed = False

    def close(self) -> None:
        self.closed = True
        for pool in self._pools.values():
            pool.close()
        self._pools.clear()

    def _where(self, url: str) -> tuple[_Origin, str]:
        known = self._urls.get(url)
        if known is not None:
            return known
        parts = urlsplit(url)
        if not parts.hostname:
            raise ValueError(f"not an absolute http(s) URL: {url!r}")
        scheme = parts.scheme.lower()
        if scheme == "https" and self._tls is None:
            self._tls = self._make_tls()
        where = _Origin(scheme, parts.hostname, parts.port, self._tls), _target(parts)
        if len(self._urls) < 1024:  # the few paths of one upstream; never a leak
            self._urls[url] = where
        return where

    def _pool(self, origin: _Origin) -> _Pool:
        pool = self._pools.get(origin.key)
        if pool is None:
            if self.closed:
                raise TransportError("the HTTP client is closed")
            pool = self._pools[origin.key] = _Pool(
                origin, limit=self._limit, keepalive=self._keepalive,
                connect_timeout=self._connect_timeout, read_timeout=self._read_timeout)
        return pool

    def _encode(self, method: str, origin: _Origin, target: str, body: bytes | None,
                headers: Mapping[str, str] | None, traceparent: str | None) -> bytes:
        if headers:
            merged = dict(self._defaults)
            for name, value in headers.items():
                _check_header(name, value)
                merged[name.lower()] = (name, value)
            merged.pop("host", None)
            merged.pop("content-length", None)
            merged.pop("transfer-encoding", None)
            lines = "".join(f"{n}: {v}\r\n" for n, v in merged.values())
        else:
            lines = self._default_lines
        if traceparent is not None:
            # made by stack.tracing (hex and dashes): no check, and no merge of a header dict,
            # which cost more than the rest of the upstream span (docs/performance.md)
            lines += f"traceparent: {traceparent}\r\n"
        if body is not None:
            lines += f"Content-Length: {len(body)}\r\n"
        elif method in ("POST", "PUT", "PATCH"):
            lines += "Content-Length: 0\r\n"
        head = f"{method} {target} HTTP/1.1\r\nHost: {origin.host_header}\r\n{lines}\r\n".encode()
        return head + body if body else head

    async def request(self, method: str, url: str, body: bytes | None = None,
                      headers: Mapping[str, str] | None = None, *, follow_redirects: bool = True,
                      traceparent: str | None = None) -> Response:
        """Send one request; the response once its head is in (its body unread). ``traceparent``:
        a W3C trace context this process made, sent as that header (``headers`` must not hold one)."""
        for _ in range(_MAX_REDIRECTS + 1):
            response = await self._exchange(method, url, body, headers, traceparent)
            location = response.headers.get("location")
            if not follow_redirects or response.status not in _REDIRECTS or not location:
                return response
            response.close()
            url = urljoin(url, location)
            if response.status == 303 or (response.status in (301, 302) and method == "POST"):
                method, body = ("GET" if method != "HEAD" else "HEAD"), None
        raise BrokenResponse(f"more than {_MAX_REDIRECTS} redirects")

    async def _exchange(self, method: str, url: str, body: bytes | None,
                        headers: Mapping[str, str] | None, traceparent: str | None) -> Response:
        origin, target = self._where(url)
        pool = self._pool(origin)
        data = self._encode(method, origin, target, body, headers, traceparent)
        conn, reused = await pool.acquire()
        while True:
            try:
                await conn.begin(data)
            except Disconnected:
                pool.release(conn)
                if not reused:
                    raise
                # the upstream closed it while it was idle and before it read the request: once more, anew
                conn, reused = await pool.acquire(fresh=True)
                continue
            except BaseException:
                conn._close()
                pool.release(conn)
                raise
            return Response(conn, pool, url)


def _check_header(name: str, value: str) -> None:
    if "\r" in value or "\n" in value or "\r" in name or "\n" in name or ":" in name:
        raise InvalidHeader(f"the {name!r} header for the upstream has a line break in it (or a colon in its name)")
