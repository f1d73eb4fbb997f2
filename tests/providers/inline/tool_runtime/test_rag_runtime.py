"""inline::rag-runtime: document extraction and chunking, then the real stack
(sentence-transformers + FAISS + rag-runtime) in-process: insert, query, knowledge_search."""

from __future__ import annotations

import base64
from contextlib import asynccontextmanager

import httpx
import pytest

from providers.inline.tool_runtime.rag_runtime import _documents
from providers.inline.tool_runtime.rag_runtime.config import RAGRuntimeConfig
from providers.inline.tool_runtime.rag_runtime.provider import RAGToolRuntime
from stack.apis._content import URL
from stack.errors import BadRequestError, UpstreamError
from stack.fetcher import FetchConfig, URLFetcher, URLRefusedError

MARKDOWN = """\
# Volcanoes

A volcano erupts when magma from the Earth's mantle rises through cracks in the crust.
Lava, ash and volcanic gases escape during an eruption.
"""

HTML = """\
<!doctype html>
<html><head><title>Sourdough</title><style>body { color: red; }</style>
<script>var recipe = "ignored";</script></head>
<body><h1>Baking sourdough bread</h1>
<p>Mix flour, water and salt with an active starter &amp; let the dough rise overnight.</p>
<ul><li>Bake at 250&deg;C</li><li>Cool on a rack</li></ul></body></html>
"""


def make_pdf(text: str) -> bytes:
    """A one-page PDF showing ``text`` in Helvetica, written by hand (pypdf cannot lay out text)."""
    stream = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


async def load(content, mime_type, *, fetcher: URLFetcher | None = None, **kwargs) -> str:
    """load_document with the fetcher of a server that lists no directory and no private host."""
    return await _documents.load_document(content, mime_type, fetcher or URLFetcher(), **kwargs)


def data_url(data: bytes, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


# -- extraction ----------------------------------------------------------------------------------


async def test_plain_text_and_markdown_are_kept_as_is():
    assert await load("just some text", None) == "just some text"
    assert await load(MARKDOWN, "text/markdown") == MARKDOWN
    assert await load([{"type": "text", "text": "a"}, {"type": "text", "text": "b"}], None) == "a b"


async def test_html_becomes_visible_text():
    text = await load(HTML, "text/html")
    assert text.splitlines() == [
        "Sourdough", "Baking sourdough bread",
        "Mix flour, water and salt with an active starter & let the dough rise overnight.",
        "Bake at 250°C", "Cool on a rack",
    ]
    assert "color" not in text and "ignored" not in text


async def test_data_urls():
    assert await load(data_url(MARKDOWN.encode(), "text/markdown"), None) == MARKDOWN
    url = URL(uri=data_url(HTML.encode(), "text/html"))
    assert "Cool on a rack" in await load(url, None)
    assert await load("data:,hello%20world", None) == "hello world"
    # RAGDocument.mime_type wins over the data URL's
    assert "<p>" in await load(url, "text/plain")


async def test_pdf_from_data_url_and_file(tmp_path):
    pdf = make_pdf("Photosynthesis turns sunlight into chemical energy")
    assert "Photosynthesis turns sunlight" in await load(data_url(pdf, "application/pdf"), None)
    (tmp_path / "leaf.pdf").write_bytes(pdf)
    local = URLFetcher(FetchConfig(allow_dirs=[str(tmp_path)]))
    assert "chemical energy" in await load(URL(uri=str(tmp_path / "leaf.pdf")), None, fetcher=local)
    with pytest.raises(BadRequestError, match="not a readable PDF"):
        await load(data_url(b"%PDF-1.4 garbage", "application/pdf"), None)


async def test_file_paths_and_file_uris_inside_allowed_directories(tmp_path):
    (tmp_path / "notes.md").write_text(MARKDOWN)
    (tmp_path / "page.html").write_text(HTML)
    local = URLFetcher(FetchConfig(allow_dirs=[str(tmp_path)]))
    assert await load(URL(uri=str(tmp_path / "notes.md")), None, fetcher=local) == MARKDOWN
    assert await load(f"file://{tmp_path}/notes.md", None, fetcher=local) == MARKDOWN
    assert "Baking sourdough bread" in await load(URL(uri=f"file://{tmp_path}/page.html"), None, fetcher=local)
    with pytest.raises(BadRequestError, match="cannot read") as info:
        await load(URL(uri=str(tmp_path / "missing.txt")), None, fetcher=local)
    assert info.value.field == "content"
    with pytest.raises(BadRequestError, match="disabled"):
        await load(URL(uri=str(tmp_path / "notes.md")), None, fetcher=local, allow_files=False)


async def test_files_are_refused_by_default(tmp_path):
    (tmp_path / "notes.md").write_text(MARKDOWN)
    with pytest.raises(URLRefusedError, match="allow_dirs: none") as info:
        await load(f"file://{tmp_path}/notes.md", None)
    assert info.value.field == "content"


async def test_unsupported_mime_type_and_bad_http():
    with pytest.raises(BadRequestError, match="unsupported mime_type 'image/png'") as info:
        await load(data_url(b"\x89PNG", "image/png"), None)
    assert info.value.field == "mime_type"
    with pytest.raises(URLRefusedError, match="127.0.0.1 is a loopback address"):
        await load("http://127.0.0.1:9/x", None, timeout=5)
    loopback = URLFetcher(FetchConfig(allow_networks=["127.0.0.1/32"]))
    with pytest.raises(UpstreamError, match="fetching http://127.0.0.1:9/x"):
        await load("http://127.0.0.1:9/x", None, fetcher=loopback, timeout=5)


# -- chunking ------------------------------------------------------------------------------------


def test_tokenizer_splits_words_and_punctuation():
    text = "Hello, world! It's 2025."
    assert [text[a:b] for a, b in _documents.tokenize(text)] == ["Hello", ",", "world", "!", "It", "'", "s", "2025", "."]


def test_chunks_have_the_size_and_overlap_asked_for():
    words = [f"w{i}" for i in range(100)]
    chunks = _documents.chunk_text(" ".join(words), 20)  # overlap defaults to 20 // 4 = 5
    assert [c.token_count for c in chunks] == [20, 20, 20, 20, 20, 20, 10]
    assert chunks[0].text == " ".join(words[:20])
    assert chunks[1].text.split()[0] == "w15"
    assert chunks[-1].text.split()[-1] == "w99"
    assert _documents.chunk_text(" ".join(words), 50, overlap=0)[1].text.split()[0] == "w50"
    assert _documents.chunk_text("short text", 20)[0].text == "short text"
    assert _documents.chunk_text("", 20) == []
    # whitespace inside a chunk is kept as written
    assert _documents.chunk_text("a  b\nc", 10)[0].text == "a  b\nc"
    with pytest.raises(BadRequestError):
        _documents.chunk_text("x", 0)


class FakeVectorIO:
    def __init__(self):
        self.inserted = []

    async def insert_chunks(self, vector_db_id, chunks, ttl_seconds=None):
        self.inserted.append((vector_db_id, chunks))


async def test_insert_chunks_carry_document_metadata():
    vector_io = FakeVectorIO()
    runtime = RAGToolRuntime(RAGRuntimeConfig(), vector_io=vector_io, inference=None)
    from stack.apis.tool_runtime import RAGDocument

    text = " ".join(f"w{i}" for i in range(30))
    await runtime.rag_tool_insert([RAGDocument(document_id="d1", content=text, metadata={"author": "ann"})], "db", 16)
    (db, chunks), = vector_io.inserted
    assert db == "db"
    assert [c.metadata for c in chunks] == [
        {"author": "ann", "document_id": "d1", "token_count": 16},
        {"author": "ann", "document_id": "d1", "token_count": 16},
        {"author": "ann", "document_id": "d1", "token_count": 6},
    ]  # 30 tokens, windows of 16 every 12 (overlap 16 * 0.25)
    with pytest.raises(BadRequestError, match="documents.0.mime_type"):
        await runtime.rag_tool_insert([RAGDocument(document_id="x", content=data_url(b"x", "image/png"),
                                                   metadata={})], "db", 16)


# -- the real stack ------------------------------------------------------------------------------

RUN_CONFIG = """\
version: '2'
image_name: rag-test
apis: [inference, vector_io, tool_runtime]
providers:
  inference:
  - provider_id: sentence-transformers
    provider_type: inline::sentence-transformers
    config: {}
  vector_io:
  - provider_id: faiss
    provider_type: inline::faiss
    config: {}
  tool_runtime:
  - provider_id: rag-runtime
    provider_type: inline::rag-runtime
    config: {}
models:
- model_id: all-MiniLM-L6-v2
  provider_id: sentence-transformers
  model_type: embedding
  metadata: {embedding_dimension: 384}
tool_groups:
- toolgroup_id: builtin::rag
  provider_id: rag-runtime
"""


@asynccontextmanager
async def serve(tmp_path, monkeypatch):
    from stack.config import load_run_config
    from stack.plugins import collect_providers, get_plugin_manager
    from stack.resolver import plan
    from stack.server import create_app

    monkeypatch.setenv("POLYSTACK_HOME", str(tmp_path / "home"))
    path = tmp_path / "run.yaml"
    path.write_text(RUN_CONFIG)
    app = create_app(plan(load_run_config(path), collect_providers(get_plugin_manager(load_entry_points=False))))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://test", timeout=60) as client:
            yield client


async def test_insert_and_query_through_the_stack(tmp_path, monkeypatch):
    pdf = make_pdf("Photosynthesis in green leaves turns sunlight, water and carbon dioxide into sugar")
    async with serve(tmp_path, monkeypatch) as client:
        tools = await client.get("/v1/tools", params={"toolgroup_id": "builtin::rag"})
        assert tools.status_code == 200, tools.text
        assert [t["identifier"] for t in tools.json()["data"]] == ["knowledge_search"]

        response = await client.post("/v1/vector-dbs", json={
            "vector_db_id": "docs", "embedding_model": "all-MiniLM-L6-v2", "embedding_dimension": 384})
        assert response.status_code == 200, response.text
        response = await client.post("/v1/tool-runtime/rag-tool/insert", json={"vector_db_id": "docs",
            "chunk_size_in_tokens": 64, "documents": [
                {"document_id": "volcano.md", "content": MARKDOWN, "mime_type": "text/markdown",
                 "metadata": {"source": "test"}},
                {"document_id": "bread.html", "content": {"uri": data_url(HTML.encode(), "text/html")},
                 "metadata": {}},
                {"document_id": "leaf.pdf", "content": data_url(pdf, "application/pdf"), "metadata": {}},
            ]})
        assert response.status_code == 200, response.text

        async def rag_query(text, **config):
            response = await client.post("/v1/tool-runtime/rag-tool/query", json={
                "content": text, "vector_db_ids": ["docs"],
                "query_config": {"query_generator_config": {"type": "default", "separator": " "}, **config}})
            assert response.status_code == 200, response.text
            return response.json()

        body = await rag_query("How do I bake a loaf of sourdough?")
        assert body["metadata"]["document_ids"][0] == "bread.html"
        assert body["content"][0]["text"].startswith("knowledge_search tool found 3 chunks")
        assert body["content"][1]["text"].startswith("Result 1 (document_id: bread.html):\nSourdough")
        assert body["content"][-1]["text"].startswith("END of knowledge_search")
        assert (await rag_query("What happens when magma rises?"))["metadata"]["document_ids"][0] == "volcano.md"
        assert (await rag_query("How do plants make sugar from light?"))["metadata"]["document_ids"][0] == "leaf.pdf"
        # the token budget keeps the best chunk only (every document here is one chunk of > 10 tokens)
        assert len((await rag_query("volcano", max_tokens_in_context=10))["metadata"]["document_ids"]) == 1

        invoked = await client.post("/v1/tool-runtime/invoke", json={
            "tool_name": "knowledge_search", "kwargs": {"query": "eruption of lava", "vector_db_ids": ["docs"]}})
        assert invoked.status_code == 200, invoked.text
        assert "Result 1 (document_id: volcano.md)" in invoked.json()["content"][1]["text"]
        missing = await client.post("/v1/tool-runtime/invoke", json={
            "tool_name": "knowledge_search", "kwargs": {"query": "lava"}})
        assert missing.status_code == 400 and "vector_db_ids" in missing.json()["detail"]

        # re-inserting a document_id replaces its chunks
        response = await client.post("/v1/tool-runtime/rag-tool/insert", json={"vector_db_id": "docs",
            "chunk_size_in_tokens": 64, "documents": [
                {"document_id": "volcano.md", "content": "Glaciers are slow rivers of ice.", "metadata": {}}]})
        assert response.status_code == 200, response.text
        body = await rag_query("magma and lava", max_chunks=10)
        assert body["metadata"]["document_ids"].count("volcano.md") == 1
        assert "Glaciers" in "".join(i["text"] for i in body["content"])

        bad = await client.post("/v1/tool-runtime/rag-tool/insert", json={"vector_db_id": "docs",
            "chunk_size_in_tokens": 64, "documents": [
                {"document_id": "img", "content": data_url(b"\x89PNG", "image/png"), "metadata": {}}]})
        assert bad.status_code == 400 and "mime_type" in bad.json()["detail"]


async def test_query_generators():
    from types import SimpleNamespace

    from stack.apis.tool_runtime import DefaultRAGQueryGeneratorConfig, LLMRAGQueryGeneratorConfig

    class FakeInference:
        async def chat_completion(self, model_id, messages, **kwargs):
            self.asked = (model_id, messages[0].content)
            return SimpleNamespace(completion_message=SimpleNamespace(content="volcano eruption"))

    inference = FakeInference()
    runtime = RAGToolRuntime(RAGRuntimeConfig(), vector_io=None, inference=inference)
    content = [{"type": "text", "text": "why"}, {"type": "text", "text": "lava?"}]
    assert await runtime.generate_query(content, DefaultRAGQueryGeneratorConfig(separator=" | ")) == "why | lava?"
    llm = LLMRAGQueryGeneratorConfig(model="m", template="Rewrite as a search query: {{ query }}")
    assert await runtime.generate_query("why lava?", llm) == "volcano eruption"
    assert inference.asked == ("m", "Rewrite as a search query: why lava?")
