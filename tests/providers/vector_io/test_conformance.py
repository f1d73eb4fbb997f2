"""One suite, every vector IO provider: a small in-process stack (HTTP through the
app) with real all-MiniLM-L6-v2 embeddings from inline::sentence-transformers."""

from __future__ import annotations

import json
import textwrap
from contextlib import asynccontextmanager

import httpx
import pytest

from stack.config import load_run_config
from stack.plugins import collect_providers, get_plugin_manager
from stack.resolver import plan
from stack.server import create_app

DOCUMENTS = {
    "neural": "Neural networks are computing systems loosely inspired by the biological brains of animals; "
    "layers of artificial neurons learn from examples.",
    "bread": "To bake sourdough bread, mix flour, water and salt with an active starter and let the dough rise overnight.",
    "football": "The football match ended in a draw after the striker missed a penalty in the final minute.",
    "volcano": "A volcano erupts when magma from the Earth's mantle rises through cracks in the crust.",
    "tax": "Income tax returns must be filed by April 15th; late filings may incur penalties and interest.",
}
BRAIN_QUERY = "brain-inspired computing"


def _provider_yaml(name: str, tmp_path, request) -> str:
    if name == "faiss-hnsw":
        return "provider_type: inline::faiss\n    config: {}"
    if name == "faiss-flat":
        return "provider_type: inline::faiss\n    config: {index_type: flat}"
    if name in ("pgvector", "pgvector-hnsw"):
        # pgvector: below hnsw_index_min_rows (10k), so queries scan exactly;
        # pgvector-hnsw: the HNSW index from the start, so every query goes through it
        pg = request.getfixturevalue("postgres_config")
        config = {"host": pg.host, "port": pg.port, "db": pg.db, "user": pg.user}
        if name == "pgvector-hnsw":
            config["hnsw_index_min_rows"] = 0
        return "provider_type: remote::pgvector\n    config: " + json.dumps(config)
    if name == "qdrant-local":
        return "provider_type: inline::qdrant\n    config: {}"
    if name == "qdrant-client-memory":
        # remote::qdrant's code path (the async client) on qdrant-client's in-memory mode:
        # no Qdrant server can run here, so nothing of it persists
        return "provider_type: remote::qdrant\n    config: {location: ':memory:'}"
    raise AssertionError(name)


PROVIDERS = ["faiss-hnsw", "faiss-flat", "pgvector", "pgvector-hnsw", "qdrant-local", "qdrant-client-memory"]


@pytest.fixture(params=PROVIDERS)
def run_config(request, tmp_path, monkeypatch):
    """A run config serving the provider under test; every stack of a test shares its state."""
    monkeypatch.setenv("POLYSTACK_HOME", str(tmp_path / "home"))
    path = tmp_path / "run.yaml"
    path.write_text(textwrap.dedent("""\
        version: '2'
        image_name: vector-io-test
        apis: [inference, vector_io]
        providers:
          inference:
          - provider_id: sentence-transformers
            provider_type: inline::sentence-transformers
            config: {}
          vector_io:
          - provider_id: vectors
            PROVIDER
        models:
        - model_id: all-MiniLM-L6-v2
          provider_id: sentence-transformers
          model_type: embedding
          metadata: {embedding_dimension: 384}
        """).replace("PROVIDER", _provider_yaml(request.param, tmp_path, request)))
    return path


@asynccontextmanager
async def serve(run_config):
    app = create_app(plan(load_run_config(run_config), collect_providers(get_plugin_manager(load_entry_points=False))))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://test", timeout=60) as client:
            yield client


async def register(client, vector_db_id="docs", **extra):
    response = await client.post("/v1/vector-dbs", json={
        "vector_db_id": vector_db_id, "embedding_model": "all-MiniLM-L6-v2", "embedding_dimension": 384, **extra})
    assert response.status_code == 200, response.text
    return response.json()


async def insert(client, chunks, vector_db_id="docs"):
    response = await client.post("/v1/vector-io/insert", json={"vector_db_id": vector_db_id, "chunks": chunks})
    assert response.status_code == 200, response.text


async def query(client, text, vector_db_id="docs", **params):
    response = await client.post("/v1/vector-io/query", json={"vector_db_id": vector_db_id, "query": text, "params": params})
    assert response.status_code == 200, response.text
    body = response.json()
    assert len(body["chunks"]) == len(body["scores"])
    assert body["scores"] == sorted(body["scores"], reverse=True)
    return body


def doc_chunks(docs=DOCUMENTS, suffix=""):
    return [{"content": text + suffix, "metadata": {"document_id": doc_id}} for doc_id, text in docs.items()]


async def test_query_finds_the_relevant_document(run_config):
    async with serve(run_config) as client:
        db = await register(client)
        assert (db["identifier"], db["embedding_dimension"]) == ("docs", 384)
        await insert(client, doc_chunks())
        body = await query(client, BRAIN_QUERY)
        assert body["chunks"][0]["metadata"]["document_id"] == "neural"
        assert body["chunks"][0]["content"] == DOCUMENTS["neural"]
        assert min(body["scores"]) >= 0.0  # llama-stack's default score_threshold
        assert len((await query(client, BRAIN_QUERY, score_threshold=-1))["chunks"]) == 3  # its default max_chunks
        body = await query(client, "Which volcano erupted?", max_chunks=1)
        assert [c["metadata"]["document_id"] for c in body["chunks"]] == ["volcano"]


async def test_interleaved_content_is_embedded_by_its_text(run_config):
    async with serve(run_config) as client:
        await register(client)
        await insert(client, [
            {"content": [{"type": "text", "text": DOCUMENTS["bread"]}], "metadata": {"document_id": "bread"}},
            {"content": {"type": "text", "text": DOCUMENTS["tax"]}, "metadata": {"document_id": "tax"}},
        ])
        body = await query(client, [{"type": "text", "text": "baking a loaf"}], max_chunks=5)
        assert [c["metadata"]["document_id"] for c in body["chunks"]] == ["bread", "tax"]
        assert body["chunks"][0]["content"] == [{"type": "text", "text": DOCUMENTS["bread"]}]


async def test_max_chunks_and_score_threshold(run_config):
    async with serve(run_config) as client:
        await register(client)
        await insert(client, doc_chunks())
        everything = await query(client, BRAIN_QUERY, max_chunks=10, score_threshold=-10)
        assert len(everything["chunks"]) == len(DOCUMENTS)
        top, second = everything["scores"][:2]
        cut = (top + second) / 2
        above = await query(client, BRAIN_QUERY, max_chunks=10, score_threshold=cut)
        assert [c["metadata"]["document_id"] for c in above["chunks"]] == ["neural"]
        assert above["scores"][0] == pytest.approx(top, abs=1e-4)
        none = await query(client, BRAIN_QUERY, score_threshold=top + 0.01)
        assert none == {"chunks": [], "scores": []}


@pytest.mark.parametrize("params,field", [
    ({"max_chunks": 0}, "params.max_chunks"),
    ({"max_chunks": "ten"}, "params.max_chunks"),
    ({"score_threshold": "high"}, "params.score_threshold"),
])
async def test_bad_query_params_are_400_naming_the_field(run_config, params, field):
    async with serve(run_config) as client:
        await register(client)
        response = await client.post("/v1/vector-io/query", json={"vector_db_id": "docs", "query": "x", "params": params})
        assert response.status_code == 400, response.text
        assert response.json()["detail"].startswith(f"{field}:")


async def test_unknown_vector_db_is_404(run_config):
    async with serve(run_config) as client:
        response = await client.post("/v1/vector-io/query", json={"vector_db_id": "nope", "query": "x"})
        assert response.status_code == 404
        response = await client.post("/v1/vector-io/insert", json={"vector_db_id": "nope", "chunks": doc_chunks()})
        assert response.status_code == 404


async def test_reingesting_a_document_replaces_its_chunks(run_config):
    async with serve(run_config) as client:
        await register(client)
        await insert(client, doc_chunks())
        await insert(client, doc_chunks())  # the same documents again: no duplicates
        body = await query(client, BRAIN_QUERY, max_chunks=20, score_threshold=-10)
        assert sorted(c["metadata"]["document_id"] for c in body["chunks"]) == sorted(DOCUMENTS)
        # a new version of one document, in two chunks, replaces the old one
        await insert(client, [
            {"content": "Spiking neural networks mimic how neurons in the brain fire.", "metadata": {"document_id": "neural", "part": 1}},
            {"content": "Neuromorphic chips run them efficiently.", "metadata": {"document_id": "neural", "part": 2}},
        ])
        body = await query(client, BRAIN_QUERY, max_chunks=20, score_threshold=-10)
        neural = [c for c in body["chunks"] if c["metadata"]["document_id"] == "neural"]
        assert sorted(c["metadata"]["part"] for c in neural) == [1, 2]
        assert len(body["chunks"]) == len(DOCUMENTS) + 1


async def test_unregister_deletes_the_data(run_config):
    async with serve(run_config) as client:
        await register(client)
        await insert(client, doc_chunks())
        assert [d["identifier"] for d in (await client.get("/v1/vector-dbs")).json()["data"]] == ["docs"]
        response = await client.delete("/v1/vector-dbs/docs")
        assert response.status_code == 200, response.text
        assert (await client.get("/v1/vector-dbs")).json()["data"] == []
        assert (await client.post("/v1/vector-io/query", json={"vector_db_id": "docs", "query": "x"})).status_code == 404
        # the same id again starts empty
        await register(client)
        assert await query(client, BRAIN_QUERY, score_threshold=-10) == {"chunks": [], "scores": []}


async def test_vector_dbs_are_kept_apart(run_config):
    async with serve(run_config) as client:
        await register(client, "a")
        await register(client, "b")
        await insert(client, doc_chunks({"neural": DOCUMENTS["neural"]}), vector_db_id="a")
        await insert(client, doc_chunks({"bread": DOCUMENTS["bread"]}), vector_db_id="b")
        a = await query(client, BRAIN_QUERY, vector_db_id="a", max_chunks=10, score_threshold=-10)
        b = await query(client, BRAIN_QUERY, vector_db_id="b", max_chunks=10, score_threshold=-10)
        assert [c["metadata"]["document_id"] for c in a["chunks"]] == ["neural"]
        assert [c["metadata"]["document_id"] for c in b["chunks"]] == ["bread"]


async def test_restart_keeps_vector_dbs_and_chunks(run_config, request):
    if "memory" in request.node.callspec.id:
        pytest.skip("an in-memory store does not outlive its process")
    async with serve(run_config) as client:
        await register(client)
        await insert(client, doc_chunks())
        await insert(client, [{"content": "Deep learning uses many layers of neurons.", "metadata": {"document_id": "neural"}}])
        before = await query(client, BRAIN_QUERY, max_chunks=10, score_threshold=-10)
    async with serve(run_config) as client:
        assert [d["identifier"] for d in (await client.get("/v1/vector-dbs")).json()["data"]] == ["docs"]
        after = await query(client, BRAIN_QUERY, max_chunks=10, score_threshold=-10)
        assert after["chunks"] == before["chunks"]
        assert after["scores"] == pytest.approx(before["scores"], abs=1e-4)
        assert len(after["chunks"]) == len(DOCUMENTS)
        # and it still takes changes
        await insert(client, doc_chunks({"tax": "Tax forms changed."}))
        again = await query(client, "tax forms", max_chunks=10, score_threshold=-10)
        assert [c["content"] for c in again["chunks"] if c["metadata"]["document_id"] == "tax"] == ["Tax forms changed."]
