"""The lean HTTP/1.1 client (providers/utils/http1.py) against scripted loopback servers.

Each test's server answers with exact bytes (``Script``), so framing, keep-alive,
a connection closed while idle, cuts and stalls are what the test says they are.
"""

from __future__ import annotations

import asyncio
import datetime
import gzip
import ssl
from collections.abc import Awaitable, Callable

import pytest

from providers.utils.http import HTTPSettings, UpstreamClient
from tests.support import cyclic_garbage
from providers.utils.http1 import (
    BrokenResponse,
    CertificateError,
    ConnectError,
    Disconnected,
    HTTP1Client,
    InvalidHeader,
    ReadTimeout,
)

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter, int], Awaitable[None]]


def ok(body: bytes = b"hello", *, extra: str = "") -> bytes:
    return f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\n{extra}\r\n".encode() + body


async def read_request(reader: asyncio.StreamReader) -> tuple[str, dict[str, str], bytes] | None:
    """One request off the connection: (request line, headers by lower-case name, body); None at its end."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, ConnectionError):
        return None
    line, *rest = head.decode().split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (h.partition(":") for h in rest if h)}
    body = await reader.readexactly(int(headers.get("content-length", 0)))
    return line, headers, body


class Script:
    """A loopback server: ``handler(reader, writer, n)`` serves the n-th connection (from 0)."""

    def __init__(self, handler: Handler, tls: ssl.SSLContext | None = None) -> None:
        self.handler = handler
        self.tls = tls
        self.connections = 0
        self.open = 0
        self.most_open = 0
        self.requests: list[tuple[str, dict[str, str], bytes]] = []
        self._writers: list[asyncio.StreamWriter] = []

    async def __aenter__(self) -> Script:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self.tls)
        self.port = self.server.sockets[0].getsockname()[1]
        scheme = "https" if self.tls else "http"
        self.url = f"{scheme}://127.0.0.1:{self.port}"
        return self

    async def __aexit__(self, *exc) -> None:
        self.server.close()
        for writer in self._writers:
            writer.close()
        await self.server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        n = self.connections
        self.connections += 1
        self.open += 1
        self.most_open = max(self.most_open, self.open)
        self._writers.append(writer)
        try:
            await self.handler(reader, writer, n)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self.open -= 1
            writer.close()

    async def next_request(self, reader: asyncio.StreamReader):
        request = await read_request(reader)
        if request is not None:
            self.requests.append(request)
        return request


def keep_alive_server(answer: Callable[[int], bytes] = lambda i: ok(f"answer {i}".encode()),
                      tls: ssl.SSLContext | None = None) -> Script:
    """A server answering every request of a connection with ``answer(request number)``."""
    async def handler(reader, writer, n):
        while await script.next_request(reader) is not None:
            writer.write(answer(len(script.requests) - 1))
            await writer.drain()

    script = Script(handler, tls)
    return script


def client(**overrides) -> HTTP1Client:
    options = dict(tls=ssl.create_default_context, limit=10, keepalive=15.0, connect_timeout=2.0,
                   read_timeout=2.0, headers={"User-Agent": "polystack-test"})
    options.update(overrides)
    return HTTP1Client(**options)


async def get(http: HTTP1Client, url: str, body: bytes | None = None, **kw) -> tuple[int, bytes]:
    response = await http.request("POST" if body is not None else "GET", url, body, **kw)
    try:
        return response.status, await response.read()
    finally:
        response.release()


async def test_sequential_requests_reuse_one_connection():
    async with keep_alive_server() as server:
        http = client()
        answers = [await get(http, server.url + "/v1/x", b'{"n": 1}') for _ in range(3)]
        http.close()
    assert answers == [(200, b"answer 0"), (200, b"answer 1"), (200, b"answer 2")]
    assert server.connections == 1
    line, headers, body = server.requests[0]
    assert line == "POST /v1/x HTTP/1.1" and body == b'{"n": 1}'
    assert headers["host"] == f"127.0.0.1:{server.port}" and headers["user-agent"] == "polystack-test"
    assert headers["content-length"] == "8"


async def test_per_request_headers_override_the_defaults():
    async with keep_alive_server() as server:
        http = client()
        await get(http, server.url + "/", headers={"user-agent": "other", "X-Key": "k"})
        http.close()
    _, headers, _ = server.requests[0]
    assert headers["user-agent"] == "other" and headers["x-key"] == "k"


@pytest.mark.parametrize("headers", [None, {"Authorization": "Bearer k"}])
async def test_a_traceparent_goes_out_as_its_header_with_or_without_other_headers(headers):
    traceparent = "00-0123456789abcdef0123456789abcdef-0123456789abcdef-01"
    async with keep_alive_server() as server:
        http = client()
        await get(http, server.url + "/", b"{}", headers=headers, traceparent=traceparent)
        http.close()
    _, sent, body = server.requests[0]
    assert sent["traceparent"] == traceparent and body == b"{}"
    assert sent.get("authorization") == (headers or {}).get("Authorization")
    assert sent["user-agent"] == "polystack-test"


async def test_a_header_with_a_line_break_is_refused_before_sending():
    async with keep_alive_server() as server:
        http = client()
        with pytest.raises(InvalidHeader, match="Authorization"):
            await http.request("GET", server.url + "/", headers={"Authorization": "Bearer k\r\nX-Evil: 1"})
        http.close()
    assert server.requests == []


@pytest.mark.parametrize("limit, calls, most_open", [(2, 5, 2), (0, 20, 20)], ids=["limit-2", "limit-0-is-none"])
async def test_concurrent_requests_stay_within_the_connection_limit(limit, calls, most_open):
    release = asyncio.Event()

    async def handler(reader, writer, n):
        while await server.next_request(reader) is not None:
            await release.wait()
            writer.write(ok(b"done"))
            await writer.drain()

    async with Script(handler) as server:
        http = client(limit=limit)
        tasks = [asyncio.create_task(get(http, server.url + "/")) for _ in range(calls)]
        async with asyncio.timeout(5):  # as many in flight as the limit lets through, or the test fails
            while len(server.requests) < most_open:
                await asyncio.sleep(0.01)
        release.set()
        answers = await asyncio.gather(*tasks)
        http.close()
    assert answers == [(200, b"done")] * calls
    assert server.connections == most_open and server.most_open == most_open


async def test_chunked_content_length_and_read_to_close_bodies():
    answers = {
        "/chunked": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
        "/length": ok(b"hello world"),
        "/close": b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nhello world",
        "/gzip": ok(gzip.compress(b"hello world"), extra="Content-Encoding: gzip\r\n"),
    }

    async def handler(reader, writer, n):
        while (request := await server.next_request(reader)) is not None:
            path = request[0].split()[1]
            writer.write(answers[path])
            await writer.drain()
            if path == "/close":
                return

    async with Script(handler) as server:
        http = client()
        got = {path: await get(http, server.url + path) for path in answers}
        http.close()
    assert got == {path: (200, b"hello world") for path in answers}


async def test_a_stream_arrives_piece_by_piece():
    more = asyncio.Event()

    async def handler(reader, writer, n):
        await server.next_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
                     b"7\r\ndata: 1\r\n")
        await writer.drain()
        await more.wait()
        writer.write(b"7\r\ndata: 2\r\n0\r\n\r\n")
        await writer.drain()

    async with Script(handler) as server:
        http = client()
        response = await http.request("GET", server.url + "/stream")
        assert response.headers["content-type"] == "text/event-stream"
        first = await response.read_chunk()  # before the rest is sent: it would hang if buffered to the end
        more.set()
        rest = await response.read()
        response.release()
        http.close()
    assert (first, rest) == (b"data: 1", b"data: 2")


async def test_a_pooled_connection_closed_by_the_upstream_is_retried_once_on_a_new_one():
    async def handler(reader, writer, n):
        await server.next_request(reader)
        if n == 0:  # answer once, then close when the next request comes (as if idle too long)
            writer.write(ok(b"first"))
            await writer.drain()
            await read_request(reader)
            return
        writer.write(ok(b"second"))
        await writer.drain()

    async with Script(handler) as server:
        http = client()
        assert await get(http, server.url + "/", b"1") == (200, b"first")
        assert await get(http, server.url + "/", b"2") == (200, b"second")
        http.close()
    assert server.connections == 2 and [r[2] for r in server.requests] == [b"1", b"2"]


async def test_a_new_connection_closed_before_the_answer_is_not_retried_here():
    async def handler(reader, writer, n):
        await server.next_request(reader)  # and close without a word

    async with Script(handler) as server:
        http = client()
        with pytest.raises(Disconnected):
            await http.request("POST", server.url + "/", b"x")
        http.close()
    assert server.connections == 1


async def test_an_answer_cut_midway_fails_and_its_connection_is_not_reused():
    async def handler(reader, writer, n):
        while await server.next_request(reader) is not None:
            if n == 0:
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial")
                await writer.drain()
                return
            writer.write(ok(b"whole"))
            await writer.drain()

    async with Script(handler) as server:
        http = client()
        response = await http.request("GET", server.url + "/")
        with pytest.raises(BrokenResponse, match="midway"):
            await response.read()
        response.release()
        assert await get(http, server.url + "/") == (200, b"whole")
        http.close()
    assert server.connections == 2


async def test_a_half_read_answer_does_not_go_back_to_the_pool():
    async def handler(reader, writer, n):
        while await server.next_request(reader) is not None:
            writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\none\r\n")
            await writer.drain()
            await asyncio.sleep(0.2)
            writer.write(b"0\r\n\r\n")
            await writer.drain()

    async with Script(handler) as server:
        http = client()
        response = await http.request("GET", server.url + "/")
        assert await response.read_chunk() == b"one"
        response.release()  # before the end
        response = await http.request("GET", server.url + "/")
        assert await response.read() == b"one"
        response.release()
        http.close()
    assert server.connections == 2


async def test_silence_past_the_read_timeout_before_and_during_the_answer():
    async def handler(reader, writer, n):
        await server.next_request(reader)
        if n == 1:
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhalf")
            await writer.drain()
        await asyncio.sleep(5)

    async with Script(handler) as server:
        http = client(read_timeout=0.2)
        with pytest.raises(ReadTimeout):
            await http.request("GET", server.url + "/")
        response = await http.request("GET", server.url + "/")
        with pytest.raises(ReadTimeout):
            await response.read()
        response.release()
        http.close()


async def test_a_refused_connection_is_a_connect_error():
    async with keep_alive_server() as server:
        url = server.url
    http = client()
    with pytest.raises(ConnectError):
        await http.request("GET", url + "/")
    http.close()


async def test_redirects_are_followed_and_the_url_is_the_last_one():
    async def handler(reader, writer, n):
        while (request := await server.next_request(reader)) is not None:
            if request[0].startswith("POST /old"):
                writer.write(b"HTTP/1.1 307 Temporary Redirect\r\nLocation: /new\r\nContent-Length: 0\r\n\r\n")
            else:
                writer.write(ok(request[2]))
            await writer.drain()

    async with Script(handler) as server:
        http = client()
        response = await http.request("POST", server.url + "/old", b"body")
        assert (response.status, await response.read(), response.url) == (200, b"body", server.url + "/new")
        response.release()
        http.close()


def _self_signed(tmp_path) -> tuple[ssl.SSLContext, str]:
    """A server context with a certificate for 127.0.0.1, and the path of that certificate (its own CA)."""
    x509 = pytest.importorskip("cryptography.x509")
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    import ipaddress

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(x509.oid.NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_path, key_path)
    return context, str(cert_path)


async def test_tls_with_the_configured_ca_and_a_rejected_unknown_certificate(tmp_path):
    server_tls, ca = _self_signed(tmp_path)
    async with keep_alive_server(lambda i: ok(b"secret"), tls=server_tls) as server:
        trusted = client(tls=lambda: ssl.create_default_context(cafile=ca))
        assert [await get(trusted, server.url + "/") for _ in range(2)] == [(200, b"secret")] * 2
        trusted.close()
        assert server.connections == 1
        system = client()
        with pytest.raises(CertificateError, match="certificate verify failed"):
            await system.request("GET", server.url + "/")
        system.close()


async def test_upstream_client_retries_a_stale_connection_even_without_retries(tmp_path):
    async def handler(reader, writer, n):
        await server.next_request(reader)
        writer.write(ok(b'{"n": %d}' % n))
        await writer.drain()
        if n == 0:
            await read_request(reader)  # the next request on this connection meets a close

    async with Script(handler) as server:
        upstream = UpstreamClient(server.url + "/v1", HTTPSettings(max_retries=0), name="remote::test (t)")
        await upstream.start()
        try:
            first = await upstream.request_bytes("POST", "/chat/completions", b"{}")
            second = await upstream.request_bytes("POST", "/chat/completions", b"{}")
        finally:
            await upstream.close()
    assert (first, second) == (b'{"n": 0}', b'{"n": 1}')


async def test_a_stream_nobody_reads_stops_being_read_from_the_upstream():
    sent = 0

    async def handler(reader, writer, n):
        nonlocal sent
        await server.next_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % (256 * 1024 * 1024))
        piece = b"x" * (1024 * 1024)
        for _ in range(256):
            writer.write(piece)
            await writer.drain()
            sent += len(piece)

    async with Script(handler) as server:
        http = client(read_timeout=None)
        response = await http.request("GET", server.url + "/large")
        assert await response.read_chunk()
        await asyncio.sleep(0.5)  # the upstream could send all 256 MiB in this time if we kept reading
        held = sent
        response.close()
        http.close()
    assert held < 64 * 1024 * 1024, held


async def test_a_line_break_in_a_per_request_header_is_a_400_naming_the_header():
    from stack.errors import BadRequestError

    async with keep_alive_server() as server:
        upstream = UpstreamClient(server.url + "/v1", HTTPSettings(), name="remote::test (t)")
        await upstream.start()
        try:
            with pytest.raises(BadRequestError, match="'Authorization' header"):
                await upstream.request_bytes("POST", "/chat/completions", b"{}",
                                             headers={"Authorization": "Bearer k\r\nX-Evil: 1"})
        finally:
            await upstream.close()
    assert server.requests == []


async def test_requests_leave_no_cyclic_garbage():
    async with keep_alive_server() as server:
        upstream = UpstreamClient(server.url + "/v1", HTTPSettings(), name="remote::test (t)")
        await upstream.start()

        async def both():
            await upstream.request_bytes("POST", "/chat/completions", b"{}")
            response = await upstream.send("POST", "/chat/completions", b"{}")
            return [line async for line in upstream.iter_lines(response)]

        async def twenty():
            for _ in range(20):
                await both()

        try:
            await both()  # the connection and its parser exist from here on
            garbage = await cyclic_garbage(twenty)
        finally:
            await upstream.close()
    assert garbage == []


async def test_upstream_client_tls_settings_and_a_rejected_certificate(tmp_path):
    from stack.errors import UpstreamError

    server_tls, ca = _self_signed(tmp_path)
    async with keep_alive_server(lambda i: ok(b"{}"), tls=server_tls) as server:
        answers = {}
        for verify in (False, ca, True):
            upstream = UpstreamClient(server.url, HTTPSettings(tls_verify=verify, max_retries=0), name="remote::test (t)")
            await upstream.start()
            try:
                answers[verify] = await upstream.request_bytes("GET", "/models")
            except UpstreamError as exc:
                answers[verify] = str(exc)
            finally:
                await upstream.close()
    assert answers[False] == answers[ca] == b"{}"
    assert answers[True].startswith(f"TLS certificate of upstream {server.url}/models rejected")


async def test_upstream_client_connect_timeout_is_a_504(monkeypatch):
    from stack.errors import UpstreamTimeoutError

    async def never(*args, **kwargs):
        await asyncio.sleep(10)

    monkeypatch.setattr(asyncio.get_running_loop(), "create_connection", never)
    upstream = UpstreamClient("http://127.0.0.1:9/v1", HTTPSettings(connect_timeout=0.05, max_retries=1,
                                                                    retry_backoff=0.01), name="remote::test (t)")
    await upstream.start()
    try:
        with pytest.raises(UpstreamTimeoutError, match="after 2 attempts: connect timed out"):
            await upstream.request_bytes("POST", "/chat/completions", b"{}")
    finally:
        await upstream.close()
