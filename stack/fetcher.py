"""The one fetcher for every URL a request names (documents, datasets, training data, checkpoints).

A request that names a URL makes the server read a file or open a connection
on the caller's behalf, with the server's rights and from inside its network.
So no provider opens such a URL itself: it asks ``URLFetcher``, which applies
the run config's ``server.fetch`` allow-list (``FetchConfig``):

- ``file://`` reads only inside ``allow_dirs``, judged on the real path after
  ``..`` and symlinks are resolved;
- ``http(s)://`` reaches public addresses (``public_hosts``), and loopback,
  private, link-local, shared (CGNAT), multicast and reserved addresses only
  through ``allow_hosts`` / ``allow_networks``. The check is made on the
  addresses the name resolves to, the connection goes to exactly those
  addresses (a second DNS answer cannot swap them: no rebinding), and every
  redirect is checked again as a new URL;
- ``data:`` URLs are decoded; every other scheme is refused.

A refusal is a ``URLRefusedError`` (400) naming the request field and the
rule; nothing has been read or sent by then.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import ipaddress
import mimetypes
import os
import re
import socket
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Awaitable, Callable
from urllib.parse import unquote, urljoin, urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator

from .errors import BadRequestError, UpstreamError, UpstreamTimeoutError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
#: host, port -> the addresses it resolves to (a test double may stand in)
Resolver = Callable[[str, int], Awaitable[list[str]]]

_SHARED = ipaddress.ip_network("100.64.0.0/10")  # carrier-grade NAT, RFC 6598
_DATA_URL = re.compile(r"^data:(?P<mime>[^;,]*)(?P<params>(;[^;,]*)*),(?P<data>.*)$", re.DOTALL | re.IGNORECASE)
_REDIRECTS = frozenset({301, 302, 303, 307, 308})

mimetypes.add_type("text/markdown", ".md")
mimetypes.add_type("text/markdown", ".markdown")


class FetchConfig(BaseModel):
    """``server.fetch``: what URLs named in requests may reach. The default
    reads no local file and reaches only public addresses."""

    model_config = ConfigDict(extra="forbid")

    allow_dirs: list[str] = Field(
        default_factory=list,
        description="Directories whose files file:// URLs may read (after resolving '..' and symlinks)",
    )
    allow_hosts: list[str] = Field(
        default_factory=list,
        description="Host names ('wiki.internal', 'localhost:8080') reachable whatever address they resolve to",
    )
    allow_networks: list[str] = Field(
        default_factory=list,
        description="Networks in CIDR form ('10.1.0.0/16', '127.0.0.1/32') reachable although not public",
    )
    public_hosts: bool = Field(True, description="Allow http(s) URLs whose host resolves to public addresses")
    max_bytes: int = Field(50 << 20, ge=1, description="Largest body or file read, in bytes")
    timeout_seconds: float = Field(30.0, gt=0, le=3600, description="Time limit of one fetch, redirects included")
    max_redirects: int = Field(5, ge=0, le=20, description="Redirects followed, each checked as a new URL")

    @field_validator("allow_networks")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for item in value:
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise ValueError(f"{item!r} is not a network in CIDR form (like '10.0.0.0/8')") from None
        return value

    @field_validator("allow_dirs")
    @classmethod
    def _absolute(cls, value: list[str]) -> list[str]:
        for item in value:
            if not os.path.isabs(os.path.expanduser(item)):
                raise ValueError(f"{item!r} is not an absolute directory path")
        return value


class URLRefusedError(BadRequestError):
    """A URL in the request is outside what ``server.fetch`` allows."""

    def __init__(self, url: str, reason: str, *, field: str) -> None:
        super().__init__(f"{_shorten(url)} refused: {reason}", field=field)
        self.rule = reason


@dataclass
class Fetched:
    """What a URL held, and what it said it is."""

    data: bytes
    mime_type: str | None
    charset: str | None
    url: str


def _shorten(url: str) -> str:
    return url if len(url) <= 200 else url[:200] + "..."


def address_class(ip: IPAddress) -> str | None:
    """Why ``ip`` is not a public address ('loopback', 'private', ...), None when it is."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped  # ::ffff:127.0.0.1 is 127.0.0.1
    if ip.is_unspecified:
        return "unspecified"
    if ip.is_loopback:
        return "loopback"
    if ip.is_link_local:
        return "link-local"
    if ip.is_multicast:
        return "multicast"
    if isinstance(ip, ipaddress.IPv4Address) and ip in _SHARED:
        return "shared (carrier-grade NAT)"
    if ip.is_reserved:
        return "reserved"
    if ip.is_private:
        return "private"
    if not ip.is_global:
        return "reserved"
    return None


async def system_resolver(host: str, port: int) -> list[str]:
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(info[4][0] for info in infos))


def parse_data_url(url: str, *, field: str) -> tuple[bytes, str | None, str | None]:
    """The bytes, mime type and charset (None when not named) of a ``data:`` URL."""
    match = _DATA_URL.match(url)
    if match is None:
        raise BadRequestError("malformed data URL (expected data:[<mime>][;base64],<data>)", field=field)
    params = [p.strip() for p in match["params"].split(";") if p.strip()]
    raw = match["data"]
    if any(p.lower() == "base64" for p in params):
        try:
            data = base64.b64decode(raw, validate=False)
        except (binascii.Error, ValueError) as exc:
            raise BadRequestError(f"data URL is not valid base64: {exc}", field=field) from None
    else:
        data = unquote(raw).encode()
    charset = next((p.split("=", 1)[1] for p in params if p.lower().startswith("charset=")), None)
    return data, (match["mime"].strip().lower() or None), charset


def _content_type(header: str) -> tuple[str | None, str | None]:
    mime, _, params = header.partition(";")
    found = re.search(r"charset=\"?([\w.-]+)", params, re.IGNORECASE)
    return (mime.strip().lower() or None), (found.group(1) if found else None)


class URLFetcher:
    """Reads URLs named in requests under a ``FetchConfig``; see the module docstring."""

    def __init__(self, config: FetchConfig | None = None, *, resolver: Resolver = system_resolver) -> None:
        self.config = config or FetchConfig()
        self.resolver = resolver
        self.dirs = [Path(os.path.realpath(os.path.expanduser(d))) for d in self.config.allow_dirs]
        self.networks = [ipaddress.ip_network(n, strict=False) for n in self.config.allow_networks]
        self.hosts = {h.lower().strip("[]") for h in self.config.allow_hosts}

    # -- local files ----------------------------------------------------------------------------

    def local_path(self, url_or_path: str, *, field: str) -> Path:
        """The real path of a ``file://`` URL or absolute path, if it lies in an allowed directory."""
        if url_or_path.lower().startswith("file:"):
            parts = urlsplit(url_or_path)
            if parts.netloc not in ("", "localhost"):
                raise URLRefusedError(url_or_path, f"file URLs name no host (got {parts.netloc!r})", field=field)
            path = unquote(parts.path)
        else:
            path = url_or_path
        if not os.path.isabs(path):
            raise URLRefusedError(url_or_path, "a file path must be absolute", field=field)
        real = Path(os.path.realpath(path))
        for allowed in self.dirs:
            if real == allowed or allowed in real.parents:
                return real
        listed = ", ".join(map(str, self.dirs)) or "none"
        raise URLRefusedError(
            url_or_path,
            f"{real} is outside the directories local files may be read from (server.fetch.allow_dirs: {listed})",
            field=field,
        )

    def _read_file(self, path: Path, url: str, max_bytes: int, field: str) -> bytes:
        try:
            # O_NOFOLLOW: a symlink put in place after the check is not followed;
            # O_NONBLOCK: a FIFO cannot hang the read
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
        except OSError as exc:
            raise BadRequestError(f"cannot read {url}: {exc.strerror or exc}", field=field) from None
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise BadRequestError(f"cannot read {url}: not a regular file", field=field)
        with os.fdopen(fd, "rb") as fh:
            data = fh.read(max_bytes + 1)
        if len(data) > max_bytes:
            raise BadRequestError(f"{url} is larger than {max_bytes} bytes", field=field)
        return data

    # -- network --------------------------------------------------------------------------------

    async def checked_addresses(self, url: str, *, field: str) -> tuple[str, int, list[str]]:
        """(host, port, addresses) of an http(s) URL, every address allowed; else URLRefusedError."""
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https"):
            raise URLRefusedError(url, f"scheme {scheme or 'none'!r} is not fetched (http, https, file, data are)", field=field)
        try:
            host, port = parts.hostname, parts.port
        except ValueError as exc:
            raise BadRequestError(f"malformed URL {_shorten(url)}: {exc}", field=field) from None
        if not host:
            raise BadRequestError(f"malformed URL {_shorten(url)}: no host", field=field)
        port = port or (443 if scheme == "https" else 80)
        host_allowed = host in self.hosts or f"{host}:{port}" in self.hosts
        try:
            addresses = [str(ipaddress.ip_address(host))]
        except ValueError:
            try:
                addresses = await self.resolver(host, port)
            except (OSError, UnicodeError) as exc:
                raise UpstreamError(f"{field}: cannot resolve {host!r}: {exc}") from None
        if not addresses:
            raise UpstreamError(f"{field}: {host!r} resolves to no address")
        for address in addresses:
            ip = ipaddress.ip_address(address.split("%", 1)[0])
            if host_allowed or any(ip in net for net in self.networks):
                continue
            kind = address_class(ip)
            if kind is not None:
                where = "" if address == host else f" ({host} resolves to {address})"
                article = "an" if kind[0] in "aeiou" else "a"
                raise URLRefusedError(
                    url,
                    f"{address} is {article} {kind} address{where}; list it in server.fetch.allow_networks "
                    f"or the host in server.fetch.allow_hosts to allow it",
                    field=field,
                )
            if not self.config.public_hosts:
                raise URLRefusedError(
                    url, f"{host} is not in server.fetch.allow_hosts and public hosts are off (server.fetch.public_hosts)",
                    field=field,
                )
        return host, port, addresses

    async def _get(self, url: str, host: str, addresses: list[str], max_bytes: int, field: str):
        """One GET to exactly ``addresses``: (status, headers, body or None when it is a redirect)."""
        import aiohttp

        connector = aiohttp.TCPConnector(resolver=_PinnedResolver(host, addresses), use_dns_cache=False, force_close=True)
        async with aiohttp.ClientSession(connector=connector, trust_env=False, auto_decompress=True) as session:
            async with session.get(url, allow_redirects=False) as response:
                if response.status in _REDIRECTS:
                    return response.status, dict(response.headers), None
                if response.status >= 400:
                    raise UpstreamError(f"{field}: fetching {_shorten(url)} failed: HTTP {response.status}")
                data = await response.content.read(max_bytes + 1)
                if len(data) > max_bytes:
                    raise BadRequestError(f"{_shorten(url)} is larger than {max_bytes} bytes", field=field)
                return response.status, dict(response.headers), data

    async def _fetch_http(self, url: str, max_bytes: int, field: str) -> Fetched:
        import aiohttp

        current = url
        for _hop in range(self.config.max_redirects + 1):
            host, _port, addresses = await self.checked_addresses(current, field=field)
            try:
                status, headers, data = await self._get(current, host, addresses, max_bytes, field)
            except aiohttp.ClientError as exc:
                raise UpstreamError(f"{field}: fetching {_shorten(current)} failed: {exc}") from None
            if data is None:
                location = headers.get("Location")
                if not location:
                    raise UpstreamError(f"{field}: {_shorten(current)} answered {status} with no Location")
                current = urljoin(current, location)
                if current.lower().startswith(("file:", "data:")):
                    raise URLRefusedError(current, f"a redirect from {_shorten(url)} may only lead to http(s)", field=field)
                continue
            mime, charset = _content_type(headers.get("Content-Type", ""))
            if mime in (None, "application/octet-stream"):
                mime = mimetypes.guess_type(urlsplit(current).path)[0] or mime
            return Fetched(data, mime, charset, current)
        raise UpstreamError(f"{field}: {_shorten(url)} redirected more than {self.config.max_redirects} times")

    # -- any URL --------------------------------------------------------------------------------

    async def fetch(self, url: str, *, field: str, max_bytes: int | None = None, timeout: float | None = None) -> Fetched:
        """The content of ``url`` (file, absolute path, http(s) or data), within the allow-list and limits.

        ``max_bytes`` and ``timeout`` may tighten the configured limits, never widen them.
        """
        limit = min(max_bytes or self.config.max_bytes, self.config.max_bytes)
        seconds = min(timeout or self.config.timeout_seconds, self.config.timeout_seconds)
        scheme = url.split(":", 1)[0].lower() if ":" in url else ""
        if scheme == "data":
            data, mime, charset = parse_data_url(url, field=field)
            if len(data) > limit:
                raise BadRequestError(f"data URL is larger than {limit} bytes", field=field)
            return Fetched(data, mime, charset, url)
        if scheme == "file" or url.startswith("/"):
            path = self.local_path(url, field=field)
            data = await asyncio.to_thread(self._read_file, path, url, limit, field)
            return Fetched(data, mimetypes.guess_type(path.name)[0], None, url)
        if scheme in ("http", "https"):
            try:
                return await asyncio.wait_for(self._fetch_http(url, limit, field), seconds)
            except asyncio.TimeoutError:
                raise UpstreamTimeoutError(f"{field}: fetching {_shorten(url)} timed out after {seconds:g}s") from None
        raise URLRefusedError(url, f"scheme {scheme or 'none'!r} is not fetched (http, https, file, data are)", field=field)


class _PinnedResolver:
    """aiohttp resolver that answers only the checked host, with the checked addresses."""

    def __init__(self, host: str, addresses: list[str]) -> None:
        self.host, self.addresses = host, addresses

    async def resolve(self, host: str, port: int = 0, family: int = socket.AF_INET) -> list[dict[str, Any]]:
        if host != self.host:  # cannot happen without redirects, which are ours to follow
            raise OSError(f"{host} was not checked by the fetcher")
        return [
            {"hostname": host, "host": address, "port": port,
             "family": socket.AF_INET6 if ":" in address else socket.AF_INET, "proto": 0,
             "flags": socket.AI_NUMERICHOST}
            for address in self.addresses
        ]

    async def close(self) -> None:
        return None
