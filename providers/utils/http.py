"""One pooled HTTP client per remote provider.

``UpstreamClient`` sends through ``http1.HTTP1Client``, a lean HTTP/1.1
client of keep-alive connection pools (the request path of a proxy is its
hottest code: aiohttp's client was ~30 % of a proxied request's CPU, see
docs/performance.md). It
retries connect errors, 429 and 5xx with exponential backoff and jitter, but
only before any of the response body is read, so a stream is never retried
once it started. Failures become the errors of ``stack.errors``: the upstream
down -> UpstreamError (502), too slow -> UpstreamTimeoutError (504), an
upstream 4xx -> the client error of the same kind, each message naming the
upstream URL and quoting the upstream's own message.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import random
import ssl
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from stack import tracing
from stack.errors import (
    BadRequestError,
    ConfigError,
    ConflictError,
    NotFoundError,
    StackError,
    UnprocessableError,
    UpstreamError,
    UpstreamTimeoutError,
)

from .http1 import (
    CertificateError,
    ConnectError,
    ConnectTimeout,
    Disconnected,
    HTTP1Client,
    InvalidHeader,
    ReadTimeout,
    Response,
    TLSError,
    TransportError,
)

log = logging.getLogger(__name__)

__all__ = ["HTTPSettings", "UpstreamClient", "UpstreamNotFoundError", "upstream_message"]

_MAX_ERROR_BODY = 64 * 1024


class UpstreamNotFoundError(NotFoundError):
    """The upstream answered 404 (an unknown model, most often): relayed as a 404."""

    def __init__(self, message: str) -> None:
        super().__init__("upstream resource", "", message=message)


@dataclass(frozen=True)
class HTTPSettings:
    """How a provider talks to its upstream; the provider configs carry the same fields."""

    connect_timeout: float | None = 10.0
    read_timeout: float | None = 600.0
    max_retries: int = 2
    retry_backoff: float = 0.5
    retry_backoff_max: float = 8.0
    retry_after_max: float = 30.0
    max_connections: int = 100
    keepalive_timeout: float = 15.0
    tls_verify: bool | str = True
    headers: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_config(cls, config: Any) -> "HTTPSettings":
        """Pick the HTTP fields off a provider config that has (some of) them."""
        names = cls.__dataclass_fields__
        return cls(**{n: getattr(config, n) for n in names if getattr(config, n, None) is not None})


def upstream_message(body: bytes) -> str:
    """The upstream's own error message out of an error body (OpenAI, FastAPI, Ollama, polystack)."""
    text = body[:_MAX_ERROR_BODY].decode("utf-8", "replace").strip()
    try:
        data = json.loads(text)
    except ValueError:
        return text[:500] or "(empty body)"
    if isinstance(data, dict):
        err = data.get("error")
        if isinstance(err, dict) and err.get("message"):
            return str(err["message"])
        if isinstance(err, str) and err:
            return err
        detail = data.get("detail")
        if isinstance(detail, str):
            return detail
        if isinstance(detail, list):  # FastAPI validation errors
            return "; ".join(
                f"{'.'.join(str(p) for p in d.get('loc', ()))}: {d.get('msg')}" if isinstance(d, dict) else str(d)
                for d in detail
            )
        if data.get("message"):
            return str(data["message"])
    return text[:500]


def _retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds the upstream asks us to wait (Retry-After / retry-after-ms), if it says."""
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return max(0.0, float(ms) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _status_error(status: int, where: str, message: str) -> StackError:
    """The stack error for an upstream's non-2xx answer that is not retried (any more)."""
    said = f"upstream {where} answered {status}: {message}"
    if status in (401, 403):
        return UpstreamError(f"upstream {where} rejected the API key ({status}): {message}")
    if status == 404:
        return UpstreamNotFoundError(said)
    if status == 409:
        return ConflictError(said)
    if status == 422:
        return UnprocessableError(said)
    if status == 429:
        return UpstreamError(f"upstream {where} is rate-limiting (429): {message}")
    if status == 504 or status == 408:
        return UpstreamTimeoutError(said)
    if 400 <= status < 500:
        return BadRequestError(said)
    return UpstreamError(said)


def _unverified_context() -> ssl.SSLContext:
    """``tls_verify: false``: encrypted, but any certificate is accepted."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def _retryable(status: int) -> bool:
    return status == 429 or (status >= 500 and status != 501)


class UpstreamClient:
    """A pooled client for one upstream base URL (``start`` before use, ``close`` at shutdown)."""

    def __init__(self, base_url: str, settings: HTTPSettings, *, name: str, headers: Mapping[str, str] = ()) -> None:
        self.base_url = base_url.rstrip("/")
        self.settings = settings
        self.name = name
        self.default_headers = {"User-Agent": "polystack", **dict(headers), **dict(settings.headers)}
        self._transport: HTTP1Client | None = None
        self._probes: dict[str, tuple[float, dict[str, Any]]] = {}
        self._probe_lock = asyncio.Lock()

    # -- life cycle ----------------------------------------------------------------

    async def start(self) -> None:
        """Create the connection pools; nothing connects until the first request."""
        if self._transport is not None:
            return
        s = self.settings
        if isinstance(s.tls_verify, str):
            try:
                context = ssl.create_default_context(cafile=s.tls_verify)
            except (OSError, ssl.SSLError) as exc:
                raise ConfigError(f"{self.name}: tls_verify: cannot load the CA bundle {s.tls_verify!r}: {exc}") from None
            tls = lambda: context  # noqa: E731
        else:
            tls = _unverified_context if s.tls_verify is False else ssl.create_default_context
        try:
            self._transport = HTTP1Client(
                tls=tls, limit=s.max_connections, keepalive=s.keepalive_timeout,
                connect_timeout=s.connect_timeout, read_timeout=s.read_timeout, headers=self.default_headers)
        except InvalidHeader as exc:
            raise ConfigError(f"{self.name}: headers: {exc}") from None

    async def close(self) -> None:
        if self._transport is not None:
            transport, self._transport = self._transport, None
            transport.close()

    @property
    def transport(self) -> HTTP1Client:
        if self._transport is None:
            raise UpstreamError(f"{self.name}: the HTTP client for {self.base_url} is not started (or already closed)")
        return self._transport

    # -- requests ------------------------------------------------------------------

    async def request_bytes(self, method: str, path: str, body: bytes | None = None, *,
                            headers: Mapping[str, str] | None = None, what: str = "") -> bytes:
        """Send with retries; the whole body of a 2xx answer, or the mapped error."""
        response = await self.send(method, path, body, headers=headers, what=what)
        try:
            return await response.read()
        except TransportError as exc:
            raise self._read_error(exc, response.url, what) from None
        finally:
            response.release()

    async def send(self, method: str, path: str, body: bytes | None = None, *,
                   headers: Mapping[str, str] | None = None, what: str = "") -> Response:
        """Send with retries until a 2xx answer starts; its body is left unread.

        The caller reads the body and must ``release()`` (or ``close()``) the response.
        ``what`` (e.g. "model 'x'") is added to error messages. When tracing is on
        this is an ``upstream`` span, and the upstream gets its ``traceparent``.
        """
        started = tracing.start_upstream(method, self.base_url + path, self.name)
        if started is None:  # the request is not recorded
            return await self._send(method, path, body, headers, what)
        span, traceparent = started
        try:
            response = await self._send(method, path, body, headers, what, traceparent)
        except BaseException as exc:
            tracing.finish_span(span, exc)
            raise
        tracing.finish_upstream(span, response.status)
        return response

    async def _send(self, method: str, path: str, body: bytes | None, headers: Mapping[str, str] | None,
                    what: str, traceparent: str | None = None) -> Response:
        url = self.base_url + path
        where = f"{url} ({what})" if what else url
        s = self.settings
        transport = self.transport
        attempt = 0
        while True:
            try:
                response = await transport.request(method, url, body, headers, traceparent=traceparent)
            except CertificateError as exc:
                raise UpstreamError(f"TLS certificate of upstream {url} rejected: {exc}") from None
            except TLSError as exc:
                raise UpstreamError(f"TLS handshake with upstream {url} failed: {exc}") from None
            except (ConnectTimeout, ConnectError, Disconnected) as exc:
                # nothing was answered yet: safe to try again
                if attempt < s.max_retries:
                    await asyncio.sleep(self._backoff(attempt))
                    attempt += 1
                    continue
                raise self._connect_error(exc, url, where, attempt) from None
            except ReadTimeout:
                raise UpstreamTimeoutError(
                    f"upstream {where} sent no answer within read_timeout={s.read_timeout}s"
                ) from None
            except InvalidHeader as exc:
                raise BadRequestError(f"{exc} ({where})") from None
            except (TransportError, ValueError) as exc:
                raise UpstreamError(f"request to upstream {where} failed: {type(exc).__name__}: {exc}") from None
            status = response.status
            if status < 300:
                return response
            try:
                error_body = await response.read(_MAX_ERROR_BODY)
            except TransportError:
                error_body = b""
            finally:
                response.release()
            message = upstream_message(error_body) if error_body else (response.reason or "")
            if _retryable(status) and attempt < s.max_retries:
                delay = _retry_after(response.headers)
                if delay is None:
                    delay = self._backoff(attempt)
                elif delay > s.retry_after_max:
                    raise UpstreamError(
                        f"upstream {where} answered {status} and asks to retry after {delay:.0f}s "
                        f"(more than retry_after_max={s.retry_after_max}s): {message}"
                    )
                log.info("%s: upstream %s answered %s; retry %d in %.2fs", self.name, url, status, attempt + 1, delay)
                await asyncio.sleep(delay)
                attempt += 1
                continue
            raise _status_error(status, where, message)

    def _backoff(self, attempt: int) -> float:
        s = self.settings
        return min(s.retry_backoff_max, s.retry_backoff * (2 ** attempt)) * random.uniform(0.5, 1.0)

    @staticmethod
    def _connect_error(exc: Exception, url: str, where: str, attempt: int) -> StackError:
        tries = f" after {attempt + 1} attempts" if attempt else ""
        if isinstance(exc, ConnectTimeout):
            return UpstreamTimeoutError(f"could not connect to upstream {where}{tries}: connect timed out")
        if isinstance(exc, ConnectError):
            reason = exc.os_error.strerror or str(exc.os_error) or type(exc.os_error).__name__
            return UpstreamError(f"cannot reach upstream {where}{tries}: {reason}")
        return UpstreamError(f"upstream {where} closed the connection{tries}: {exc or type(exc).__name__}")

    def _read_error(self, exc: BaseException, url: str, what: str, *, after: str = "") -> StackError:
        where = f"{url} ({what})" if what else url
        if isinstance(exc, ReadTimeout):
            return UpstreamTimeoutError(
                f"upstream {where} stopped sending{after} for longer than read_timeout={self.settings.read_timeout}s"
            )
        return UpstreamError(f"upstream {where} broke off the response{after}: {type(exc).__name__}: {exc}")

    async def iter_lines(self, response: Response, *, what: str = "") -> AsyncIterator[bytes]:
        """The body of ``response`` line by line (``\\r\\n`` or ``\\n``), as it arrives.

        A connection cut or a read timeout raises UpstreamError / UpstreamTimeoutError;
        the response is always released (closed when not read to the end).
        """
        url = response.url
        buffered = b""
        lines_seen = 0
        complete = False
        try:
            try:
                while piece := await response.read_chunk():
                    lines = (buffered + piece).split(b"\n") if buffered else piece.split(b"\n")
                    buffered = lines.pop()
                    for line in lines:
                        lines_seen += 1
                        yield line[:-1] if line.endswith(b"\r") else line
                    # Reading what is already buffered does not suspend, and a server's send to a client
                    # that has gone returns at once: without this, a fast upstream would keep the loop
                    # busy relaying into nowhere, and the disconnect that should cancel the stream
                    # would not be seen until the upstream stopped (measured: a whole 256 MiB answer).
                    await asyncio.sleep(0)
            except TransportError as exc:
                raise self._read_error(exc, url, what, after=f" after {lines_seen} lines") from None
            if buffered:
                yield buffered.rstrip(b"\r")
            complete = True
        finally:
            if complete:
                response.release()
            else:  # a half-read connection must not go back to the pool
                response.close()

    async def cached_probe(self, path: str, timeout: float, ttl: float = 10.0) -> dict[str, Any]:
        """``probe``, answered from memory for ``ttl`` seconds so health checks
        do not hammer the upstream."""
        async with self._probe_lock:
            now = time.monotonic()
            cached = self._probes.get(path)
            if cached is None or now - cached[0] > ttl:
                cached = self._probes[path] = (now, await self.probe(path, timeout))
            return cached[1]

    async def probe(self, path: str, timeout: float) -> dict[str, Any]:
        """Reachability of the upstream for health checks; never raises."""
        url = self.base_url + path
        started = time.perf_counter()
        try:
            async with asyncio.timeout(timeout):
                response = await self.transport.request("GET", url)
                try:
                    await response.read(_MAX_ERROR_BODY)
                finally:
                    response.release()
            status = response.status
        except Exception as exc:  # noqa: BLE001 - health reports, it does not fail
            return {"status": "unreachable", "url": url, "error": f"{type(exc).__name__}: {exc}".rstrip(": ")}
        out: dict[str, Any] = {"status": "ok", "url": url, "http_status": status,
                               "latency_ms": round((time.perf_counter() - started) * 1000, 1)}
        if status in (401, 403):
            out["warning"] = "the upstream rejected the configured API key"
        elif status >= 500:
            out["status"] = "degraded"
        return out
