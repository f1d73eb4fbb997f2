"""Safe defaults of a real `polystack run`: loopback bind, the URL allow-list,
the body limit and the generation limits, over HTTP as a caller sees them.

Every request goes to loopback addresses; refused URLs are never connected to.
"""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

import httpx
import pytest

from stack.cli import exposure_warning
from tests.support import QuietHandler, ServerProcess, free_port, serving, starter_with_server

MODEL = "SmolLM2-135M-Instruct"
SECRET = "the vault combination is 31-41-59"
PUBLIC = "Basalt forms when lava cools quickly at the surface."


def listening_addresses(port: int) -> set[str]:
    """Local addresses with a socket listening on ``port``, read from /proc/net/tcp{,6}."""
    found = set()
    for name, width in (("/proc/net/tcp", 8), ("/proc/net/tcp6", 32)):
        if not os.path.exists(name):
            continue
        for line in Path(name).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, _, hex_port = local.partition(":")
            if state != "0A" or int(hex_port, 16) != port:  # 0A: LISTEN
                continue
            raw = bytes.fromhex(address)
            # the kernel prints each 32-bit word in host (little-endian) order
            words = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
            family = socket.AF_INET if width == 8 else socket.AF_INET6
            found.add(socket.inet_ntop(family, words))
    return found


# -- the starter as installed ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def starter(tmp_path_factory):
    with ServerProcess("starter", home=tmp_path_factory.mktemp("safe-home"), host=None) as proc:
        yield proc


@pytest.fixture(scope="module")
def client(starter):
    with httpx.Client(base_url=starter.base_url, timeout=120) as http:
        yield http


def test_the_starter_listens_on_loopback_only(starter):
    assert listening_addresses(starter.port) == {"127.0.0.1"}
    assert "no API key" not in starter.output()


def test_opening_the_server_without_keys_warns():
    assert "no API key" in exposure_warning("0.0.0.0", 8321, [])
    assert "no API key" in exposure_warning("192.0.2.10", 8321, [])
    assert exposure_warning("0.0.0.0", 8321, ["k1"]) is None
    for loopback in ("127.0.0.1", "localhost", "::1", "127.0.0.2"):
        assert exposure_warning(loopback, 8321, []) is None


def test_local_files_are_refused_by_default(client):
    client.post("/v1/vector-dbs", json={"vector_db_id": "default-kb", "embedding_model": "all-MiniLM-L6-v2",
                                        "embedding_dimension": 384}).raise_for_status()
    for uri in ("file:///etc/passwd", "file:///tmp/../etc/passwd", "/etc/passwd"):
        response = client.post("/v1/tool-runtime/rag-tool/insert", json={
            "vector_db_id": "default-kb", "chunk_size_in_tokens": 64,
            "documents": [{"document_id": "passwd", "content": {"uri": uri}, "metadata": {}}],
        })
        assert response.status_code == 400, response.text
        detail = response.json()["detail"]
        assert detail.startswith("documents.0.content:") and "server.fetch.allow_dirs: none" in detail, detail
    found = client.post("/v1/vector-io/query", json={"vector_db_id": "default-kb", "query": "root login shell"})
    assert found.status_code == 200 and found.json()["chunks"] == []


def test_agent_turn_documents_go_through_the_same_allow_list(client):
    agent = client.post("/v1/agents", json={"agent_config": {
        "model": MODEL, "instructions": "Answer briefly.", "toolgroups": ["builtin::rag"],
        "enable_session_persistence": True}})
    assert agent.status_code == 200, agent.text
    agent_id = agent.json()["agent_id"]
    session = client.post(f"/v1/agents/{agent_id}/session", json={"session_name": "docs"}).json()["session_id"]
    turn = client.post(f"/v1/agents/{agent_id}/session/{session}/turn", json={
        "messages": [{"role": "user", "content": "What is in the attached file?"}], "stream": False,
        "documents": [{"content": {"uri": "file:///etc/passwd"}, "mime_type": "text/plain"}]})
    assert turn.status_code == 400, turn.text
    assert "outside the directories" in turn.json()["detail"]
    steps = client.get(f"/v1/agents/{agent_id}/session/{session}").json()["turns"]
    assert steps == []


def test_an_oversized_body_is_refused_unread_and_the_server_goes_on(starter, client):
    # 64 MiB announced and none of it sent: the answer cannot have waited for the body
    with socket.create_connection(("127.0.0.1", starter.port), timeout=10) as sock:
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: %d\r\n\r\n" % (64 << 20))
        answer = b""
        while piece := sock.recv(65536):  # the server closes after its answer
            answer += piece
        answer = answer.decode()
    assert answer.startswith("HTTP/1.1 413"), answer
    assert "server.max_request_bytes" in answer
    # sent in chunks with no length: stopped once past the limit
    chunks = (b"x" * (1 << 20) for _ in range(20))
    response = client.post("/v1/chat/completions", content=chunks, headers={"Content-Type": "application/json"})
    assert response.status_code == 413 and "16777216 bytes" in response.json()["detail"]
    assert response.json()["error"]["type"] == "PayloadTooLargeError"  # as for the announced length
    assert '"type":"PayloadTooLargeError"' in answer
    assert client.get("/v1/health").json()["status"] == "OK"
    small = client.post("/v1/chat/completions", json={"model": "no-such-model", "messages": [{"role": "user", "content": "hi"}]})
    assert small.status_code == 404


@pytest.mark.parametrize("path, body, field", [
    ("/v1/chat/completions", {"max_tokens": 10**12}, "max_tokens"),
    ("/v1/chat/completions", {"max_completion_tokens": 10**12}, "max_completion_tokens"),
    ("/v1/chat/completions", {"n": 10**6}, "n"),
    ("/v1/chat/completions", {"logprobs": True, "top_logprobs": 1000}, "top_logprobs"),
    ("/v1/chat/completions", {"top_k": 10**12}, "top_k"),
    ("/v1/completions", {"max_tokens": 10**12}, "max_tokens"),
    ("/v1/completions", {"logprobs": 500}, "logprobs"),
    ("/v1/inference/chat-completion", {"sampling_params": {"max_tokens": 10**12}}, "sampling_params.max_tokens"),
    ("/v1/inference/chat-completion", {"sampling_params": {"strategy": {"type": "top_k", "top_k": 10**12}}},
     "sampling_params.strategy.top_k"),
    ("/v1/inference/chat-completion", {"logprobs": {"top_k": 10**6}}, "logprobs.top_k"),
])
def test_generation_limits_are_400s_naming_the_field(client, path, body, field):
    if path == "/v1/inference/chat-completion":
        request = {"model_id": MODEL, "messages": [{"role": "user", "content": "hi"}], **body}
    elif path == "/v1/completions":
        request = {"model": MODEL, "prompt": "hi", **body}
    else:
        request = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], **body}
    started = time.monotonic()
    response = client.post(path, json=request)
    assert time.monotonic() - started < 5  # answered, not generated (a generous bound: CI machines vary)
    assert response.status_code == 400, response.text
    assert response.json()["detail"].startswith(f"{field}: "), response.json()


def test_max_tokens_past_what_the_prompt_leaves_is_a_400(client):
    # fits the 4096-token context alone, not with the prompt in front of it
    response = client.post("/v1/chat/completions", json={
        "model": MODEL, "max_tokens": 4090, "messages": [{"role": "user", "content": "Tell me about volcanoes."}]})
    assert response.status_code == 400, response.text
    detail = response.json()["detail"]
    assert detail.startswith("max_tokens: 4090 tokens asked; the prompt is") and "leaves" in detail


# -- a server that opens one directory and one host ------------------------------------------------


class _Site(QuietHandler):
    """Loopback documents: /doc.md, /redirect?to=URL; every path asked is recorded."""

    hits: list[str] = []

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        self.hits.append(self.path)
        if self.path.startswith("/redirect?to="):
            self.send_response(302)
            self.send_header("Location", self.path.split("=", 1)[1])
            self.end_headers()
            return
        body = f"# Rocks\n\n{PUBLIC}\n".encode() if self.path == "/doc.md" else f"{SECRET}\n".encode()
        self.reply(body, "text/markdown")


@pytest.fixture(scope="module")
def site():
    with serving(_Site) as port:
        yield port


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("fetch-tree")
    (root / "docs").mkdir()
    (root / "docs" / "granite.md").write_text("# Granite\n\nGranite forms when magma cools slowly underground.\n")
    (root / "secret.txt").write_text(SECRET)
    os.symlink(root / "secret.txt", root / "docs" / "shortcut.txt")
    return root


@pytest.fixture(scope="module")
def opened(tmp_path_factory, tree, site):
    home = tmp_path_factory.mktemp("opened-home")
    config = starter_with_server(home / "run.yaml", fetch={
        "allow_dirs": [str(tree / "docs")], "allow_hosts": [f"localhost:{site}"], "timeout_seconds": 5})
    with ServerProcess(str(config), home=home) as proc:
        with httpx.Client(base_url=proc.base_url, timeout=120) as http:
            http.post("/v1/vector-dbs", json={"vector_db_id": "kb", "embedding_model": "all-MiniLM-L6-v2",
                                              "embedding_dimension": 384}).raise_for_status()
            yield http


def _insert(http: httpx.Client, *uris: str) -> httpx.Response:
    return http.post("/v1/tool-runtime/rag-tool/insert", json={
        "vector_db_id": "kb", "chunk_size_in_tokens": 64,
        "documents": [{"document_id": f"doc-{i}", "content": {"uri": uri}, "metadata": {}} for i, uri in enumerate(uris)],
    })


def _stored_text(http: httpx.Client, query: str) -> str:
    found = http.post("/v1/vector-io/query", json={"vector_db_id": "kb", "query": query, "params": {"max_chunks": 50}})
    assert found.status_code == 200, found.text
    return " ".join(chunk["content"] for chunk in found.json()["chunks"])


@pytest.mark.parametrize("uri, rule", [
    ("file:///etc/passwd", "outside the directories"),
    ("file://{tree}/docs/../secret.txt", "outside the directories"),
    ("file://{tree}/docs/shortcut.txt", "outside the directories"),  # a symlink out of the allowed directory
    ("http://127.0.0.1:{site}/doc.md", "127.0.0.1 is a loopback address"),
    ("http://169.254.169.254/latest/meta-data/", "169.254.169.254 is a link-local address"),
    ("http://localhost:{site}/redirect?to=http://127.0.0.1:{site}/secret", "127.0.0.1 is a loopback address"),
    ("http://localhost:{other}/doc.md", "(localhost resolves to"),  # a name resolving to a non-public address
    ("gopher://localhost:{site}/", "scheme 'gopher' is not fetched"),
])
def test_refused_urls_are_400s_and_write_nothing(opened, tree, site, uri, rule):
    _Site.hits.clear()
    uri = uri.format(tree=tree, site=site, other=free_port())
    # an allowed document in the same request is not written either
    response = _insert(opened, f"file://{tree}/docs/granite.md", uri)
    assert response.status_code == 400, response.text
    detail = response.json()["detail"]
    assert detail.startswith("documents.1.content:") and rule in detail, detail
    assert not {"/secret", "/doc.md"} & set(_Site.hits), _Site.hits  # the redirect itself may be asked
    stored = _stored_text(opened, "vault combination granite magma")
    assert SECRET not in stored and "Granite" not in stored


def test_an_allowed_directory_and_an_allowed_host_are_read(opened, tree, site):
    response = _insert(opened, f"file://{tree}/docs/granite.md", f"http://localhost:{site}/doc.md")
    assert response.status_code == 200, response.text
    stored = _stored_text(opened, "How do rocks form from magma and lava?")
    assert "Granite forms when magma cools slowly" in stored and PUBLIC in stored
