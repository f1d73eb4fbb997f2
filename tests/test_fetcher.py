"""stack/fetcher.py: the allow-list for URLs named in requests, on real files and a real loopback server.

Every refusal is checked to happen before a connection: the resolver double
records what was looked up, and the local server records what reached it.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os

import pytest
from aiohttp import web

from stack.errors import BadRequestError, UpstreamError, UpstreamTimeoutError
from stack.fetcher import FetchConfig, URLFetcher, URLRefusedError, address_class


class FakeResolver:
    """Test double for DNS: fixed answers per host name, every lookup recorded."""

    def __init__(self, answers: dict[str, list[str]]) -> None:
        self.answers = answers
        self.asked: list[str] = []

    async def __call__(self, host: str, port: int) -> list[str]:
        self.asked.append(host)
        if host not in self.answers:
            raise OSError(f"no such host {host}")
        return self.answers[host]


@pytest.fixture
async def site():
    """A loopback web server: /doc.md, /big, /slow, /redirect?to=URL; ``site.hits`` lists the paths asked."""
    hits: list[str] = []

    async def handle(request: web.Request) -> web.StreamResponse:
        hits.append(request.path_qs)
        if request.path == "/doc.md":
            return web.Response(text="# Title\n\nbody", content_type="text/markdown")
        if request.path == "/big":
            return web.Response(body=b"x" * 4096)
        if request.path == "/slow":
            await asyncio.sleep(5)
            return web.Response(text="late")
        if request.path == "/redirect":
            raise web.HTTPFound(request.query["to"])
        if request.path == "/host":
            return web.Response(text=request.headers.get("Host", ""))
        return web.Response(status=404)

    app = web.Application()
    app.router.add_route("GET", "/{tail:.*}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    server = web.TCPSite(runner, "127.0.0.1", 0)
    await server.start()
    port = runner.addresses[0][1]
    yield type("Site", (), {"port": port, "hits": hits, "url": f"http://127.0.0.1:{port}"})
    await runner.cleanup()


@pytest.mark.parametrize("address, kind", [
    ("127.0.0.1", "loopback"), ("127.8.9.10", "loopback"), ("::1", "loopback"),
    ("::ffff:127.0.0.1", "loopback"), ("10.1.2.3", "private"), ("172.16.0.1", "private"),
    ("192.168.1.1", "private"), ("fc00::1", "private"), ("169.254.169.254", "link-local"),
    ("fe80::1", "link-local"), ("100.64.0.1", "shared (carrier-grade NAT)"), ("224.0.0.1", "multicast"),
    ("ff02::1", "multicast"), ("0.0.0.0", "unspecified"), ("::", "unspecified"), ("240.0.0.1", "reserved"),
    ("8.8.8.8", None), ("2001:4860:4860::8888", None),
])
def test_address_classes(address, kind):
    assert address_class(ipaddress.ip_address(address)) == kind


# -- local files ---------------------------------------------------------------------------------


@pytest.fixture
def tree(tmp_path):
    allowed = tmp_path / "allowed"
    (allowed / "sub").mkdir(parents=True)
    (allowed / "sub" / "notes.txt").write_text("inside")
    (tmp_path / "secret.txt").write_text("outside")
    os.symlink(tmp_path / "secret.txt", allowed / "escape.txt")
    os.symlink(allowed / "sub" / "notes.txt", allowed / "alias.txt")
    return tmp_path


async def test_files_inside_an_allowed_directory_are_read(tree):
    fetcher = URLFetcher(FetchConfig(allow_dirs=[str(tree / "allowed")]))
    got = await fetcher.fetch(f"file://{tree}/allowed/sub/notes.txt", field="content")
    assert (got.data, got.mime_type) == (b"inside", "text/plain")
    assert (await fetcher.fetch(f"file://{tree}/allowed/alias.txt", field="content")).data == b"inside"
    assert (await fetcher.fetch(f"{tree}/allowed/sub/notes.txt", field="content")).data == b"inside"


@pytest.mark.parametrize("url", [
    "file:///etc/passwd",
    "file:///tmp/../etc/passwd",
    "/etc/passwd",
    "file:{tree}/allowed/../secret.txt",
    "file://{tree}/allowed/sub/../../secret.txt",
    "file://{tree}/allowed/escape.txt",  # a symlink pointing out
    "file://{tree}/allowed%2F..%2Fsecret.txt",
    "file://{tree}/allowed-not/secret.txt",  # a sibling sharing the prefix
])
async def test_files_outside_allowed_directories_are_refused(tree, url):
    fetcher = URLFetcher(FetchConfig(allow_dirs=[str(tree / "allowed")]))
    with pytest.raises(URLRefusedError, match="outside the directories") as info:
        await fetcher.fetch(url.format(tree=tree), field="documents.0.content")
    assert info.value.field == "documents.0.content"
    assert "server.fetch.allow_dirs" in info.value.message


async def test_no_file_is_read_by_default(tree):
    with pytest.raises(URLRefusedError, match=r"allow_dirs: none"):
        await URLFetcher().fetch(f"file://{tree}/allowed/sub/notes.txt", field="content")


async def test_file_urls_with_a_host_relative_paths_and_odd_files(tree):
    fetcher = URLFetcher(FetchConfig(allow_dirs=[str(tree / "allowed")]))
    with pytest.raises(URLRefusedError, match="file URLs name no host"):
        await fetcher.fetch(f"file://fileserver{tree}/allowed/sub/notes.txt", field="content")
    with pytest.raises(URLRefusedError, match="must be absolute"):
        await fetcher.fetch("file:allowed/sub/notes.txt", field="content")
    with pytest.raises(BadRequestError, match="not a regular file"):
        await fetcher.fetch(f"file://{tree}/allowed/sub", field="content")
    os.mkfifo(tree / "allowed" / "pipe")  # would block a plain open() for ever
    with pytest.raises(BadRequestError, match="not a regular file"):
        await asyncio.wait_for(fetcher.fetch(f"file://{tree}/allowed/pipe", field="content"), 5)
    with pytest.raises(BadRequestError, match="larger than 3 bytes"):
        await fetcher.fetch(f"file://{tree}/allowed/sub/notes.txt", field="content", max_bytes=3)


# -- schemes and data URLs -----------------------------------------------------------------------


@pytest.mark.parametrize("url", ["gopher://example.com/", "ftp://example.com/x", "jar:file:///x!/y", "dict://x:11211/"])
async def test_other_schemes_are_refused(url):
    with pytest.raises(URLRefusedError, match="is not fetched"):
        await URLFetcher().fetch(url, field="content")


async def test_data_urls_are_decoded_within_the_size_limit():
    got = await URLFetcher().fetch("data:text/plain;charset=latin-1;base64,aGk=", field="content")
    assert (got.data, got.mime_type, got.charset) == (b"hi", "text/plain", "latin-1")
    with pytest.raises(BadRequestError, match="larger than 1 bytes"):
        await URLFetcher(FetchConfig(max_bytes=1)).fetch("data:,hello", field="content")


# -- network -------------------------------------------------------------------------------------


@pytest.mark.parametrize("url, rule", [
    ("http://127.0.0.1:{port}/doc.md", "127.0.0.1 is a loopback address"),
    ("http://[::1]:{port}/doc.md", "::1 is a loopback address"),
    ("http://2130706433:{port}/doc.md", "a loopback address"),  # 127.0.0.1 written as one number
    ("http://169.254.169.254/latest/meta-data/", "169.254.169.254 is a link-local address"),
    ("http://[::ffff:169.254.169.254]/", "is a link-local address"),
    ("http://10.0.0.7/", "10.0.0.7 is a private address"),
    ("http://100.64.1.1/", "shared (carrier-grade NAT)"),
    ("http://0.0.0.0:{port}/", "0.0.0.0 is an unspecified address"),
])
async def test_non_public_addresses_are_refused_before_connecting(site, url, rule):
    with pytest.raises(URLRefusedError, match=rule.replace("(", r"\(").replace(")", r"\)")):
        await URLFetcher().fetch(url.format(port=site.port), field="content")
    assert site.hits == []


async def test_a_name_resolving_to_a_private_address_is_refused():
    dns = FakeResolver({"intranet.example": ["93.184.216.34", "10.20.30.40"]})
    with pytest.raises(URLRefusedError, match=r"intranet\.example resolves to 10\.20\.30\.40"):
        await URLFetcher(resolver=dns).fetch("https://intranet.example/wiki", field="content")
    assert dns.asked == ["intranet.example"]


async def test_the_connection_goes_to_the_address_that_was_checked(site):
    # 'docs.example' exists only in the resolver double: reaching the local
    # server proves that no second lookup decided where to connect
    dns = FakeResolver({"docs.example": ["127.0.0.1"]})
    fetcher = URLFetcher(FetchConfig(allow_networks=["127.0.0.1/32"]), resolver=dns)
    got = await fetcher.fetch(f"http://docs.example:{site.port}/host", field="content")
    assert got.data.decode() == f"docs.example:{site.port}"
    assert dns.asked == ["docs.example"]


async def test_allowed_hosts_and_networks_are_fetched(site):
    by_network = URLFetcher(FetchConfig(allow_networks=["127.0.0.0/8"]))
    got = await by_network.fetch(f"{site.url}/doc.md", field="content")
    assert (got.data, got.mime_type) == (b"# Title\n\nbody", "text/markdown")
    by_host = URLFetcher(FetchConfig(allow_hosts=[f"localhost:{site.port}"]))
    assert (await by_host.fetch(f"http://localhost:{site.port}/doc.md", field="content")).data.startswith(b"# Title")
    with pytest.raises(URLRefusedError, match="localhost resolves to"):  # another port of the same host
        await by_host.fetch(f"http://localhost:{site.port + 1}/doc.md", field="content")


async def test_public_hosts_can_be_switched_off():
    dns = FakeResolver({"example.com": ["93.184.216.34"]})
    fetcher = URLFetcher(FetchConfig(public_hosts=False), resolver=dns)
    with pytest.raises(URLRefusedError, match="public hosts are off"):
        await fetcher.fetch("https://example.com/", field="content")


async def test_every_redirect_is_checked_again(site):
    fetcher = URLFetcher(FetchConfig(allow_hosts=[f"localhost:{site.port}"]))
    to_loopback = f"http://localhost:{site.port}/redirect?to=http://127.0.0.1:{site.port}/doc.md"
    with pytest.raises(URLRefusedError, match="127.0.0.1 is a loopback address"):
        await fetcher.fetch(to_loopback, field="content")
    assert site.hits == [f"/redirect?to=http://127.0.0.1:{site.port}/doc.md"]
    with pytest.raises(URLRefusedError, match="may only lead to http"):
        await fetcher.fetch(f"http://localhost:{site.port}/redirect?to=file:///etc/passwd", field="content")
    allowed = await fetcher.fetch(f"http://localhost:{site.port}/redirect?to=/doc.md", field="content")
    assert allowed.data.startswith(b"# Title") and allowed.url.endswith("/doc.md")


async def test_size_time_and_redirect_limits(site):
    fetcher = URLFetcher(FetchConfig(allow_networks=["127.0.0.1/32"], max_bytes=1024, timeout_seconds=0.5,
                                     max_redirects=1))
    with pytest.raises(BadRequestError, match="larger than 1024 bytes"):
        await fetcher.fetch(f"{site.url}/big", field="content")
    with pytest.raises(UpstreamTimeoutError, match="timed out after 0.5s"):
        await fetcher.fetch(f"{site.url}/slow", field="content")
    twice = f"{site.url}/redirect?to=/redirect%3Fto%3D/doc.md"
    with pytest.raises(UpstreamError, match="redirected more than 1 times"):
        await fetcher.fetch(twice, field="content")
    with pytest.raises(UpstreamError, match="HTTP 404"):
        await fetcher.fetch(f"{site.url}/missing", field="content")


def test_config_errors_name_the_entry():
    with pytest.raises(ValueError, match="'10.0.0.0/33' is not a network"):
        FetchConfig(allow_networks=["10.0.0.0/33"])
    with pytest.raises(ValueError, match="'docs' is not an absolute directory path"):
        FetchConfig(allow_dirs=["docs"])
