"""A real ``polystack run`` with sentence-transformers + FAISS, driven by
llama-stack-client 0.1.0: vector DBs, insert, query, unregister, restart."""

from __future__ import annotations

import httpx
import pytest
from llama_stack_client import APIStatusError, LlamaStackClient

from tests.support import ServerProcess

RUN_CONFIG = """\
version: '2'
image_name: vector-e2e
apis: [inference, vector_io]
providers:
  inference:
  - provider_id: sentence-transformers
    provider_type: inline::sentence-transformers
    config: {}
  vector_io:
  - provider_id: faiss
    provider_type: inline::faiss
    config:
      kvstore:
        type: sqlite
        namespace: null
        db_path: ${env.POLYSTACK_HOME}/faiss_store.db
models:
- model_id: all-MiniLM-L6-v2
  provider_id: sentence-transformers
  model_type: embedding
  metadata:
    embedding_dimension: 384
"""

DOCUMENTS = {
    "neural": "Neural networks are computing systems loosely inspired by the biological brains of animals.",
    "bread": "To bake sourdough bread, mix flour, water and salt with an active starter.",
    "football": "The football match ended in a draw after the striker missed a penalty.",
    "volcano": "A volcano erupts when magma rises through cracks in the Earth's crust.",
}
CHUNKS = [{"content": text, "metadata": {"document_id": doc_id}} for doc_id, text in DOCUMENTS.items()]


@pytest.fixture
def config(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text(RUN_CONFIG)
    return path


def test_register_insert_query_unregister(config, tmp_path):
    with ServerProcess(str(config), home=tmp_path / "home") as server:
        client = LlamaStackClient(base_url=server.base_url, timeout=60)
        db = client.vector_dbs.register(vector_db_id="docs", embedding_model="all-MiniLM-L6-v2", embedding_dimension=384)
        assert (db.identifier, db.provider_id, db.embedding_dimension) == ("docs", "faiss", 384)
        assert [d.identifier for d in client.vector_dbs.list()] == ["docs"]
        assert client.vector_dbs.retrieve("docs").embedding_model == "all-MiniLM-L6-v2"

        client.vector_io.insert(vector_db_id="docs", chunks=CHUNKS)
        result = client.vector_io.query(vector_db_id="docs", query="brain-inspired computing")
        assert result.chunks[0].metadata["document_id"] == "neural"
        assert result.chunks[0].content == DOCUMENTS["neural"]
        # llama-stack's defaults: at most 3 chunks, none scoring below 0.0
        assert 1 <= len(result.chunks) == len(result.scores) <= 3
        assert min(result.scores) >= 0.0
        one = client.vector_io.query(vector_db_id="docs", query="baking", params={"max_chunks": 1})
        assert [c.metadata["document_id"] for c in one.chunks] == ["bread"]

        with pytest.raises(APIStatusError) as info:
            client.vector_io.query(vector_db_id="docs", query="x", params={"max_chunks": -1})
        assert info.value.status_code == 400
        assert info.value.response.json()["detail"].startswith("params.max_chunks:")

        client.vector_dbs.unregister("docs")
        assert client.vector_dbs.list() == []
        with pytest.raises(APIStatusError) as info:
            client.vector_io.query(vector_db_id="docs", query="brain-inspired computing")
        assert info.value.status_code == 404


def test_chunks_survive_a_restart(config, tmp_path):
    home = tmp_path / "home"
    query = {"vector_db_id": "docs", "query": "brain-inspired computing", "params": {"max_chunks": 4}}
    with ServerProcess(str(config), home=home) as server:
        client = LlamaStackClient(base_url=server.base_url, timeout=60)
        client.vector_dbs.register(vector_db_id="docs", embedding_model="all-MiniLM-L6-v2")
        client.vector_io.insert(vector_db_id="docs", chunks=CHUNKS)
        before = httpx.post(server.base_url + "/v1/vector-io/query", json=query, timeout=60).json()
    assert (home / "faiss_store.db").exists()

    with ServerProcess(str(config), home=home) as server:
        after = httpx.post(server.base_url + "/v1/vector-io/query", json=query, timeout=60).json()
    assert after["chunks"] == before["chunks"]
    assert after["scores"] == pytest.approx(before["scores"], abs=1e-4)
    assert after["chunks"][0]["metadata"]["document_id"] == "neural"
