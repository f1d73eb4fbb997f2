"""inline::faiss beyond the conformance suite: crash recovery from stored rows,
rebuilds after many replacements, the llama-stack config, dimension checks.
Embeddings come from a test double that reads a text like "1,0,0" as its vector."""

from __future__ import annotations

from pathlib import Path

import pytest

from providers.inline.vector_io.faiss import FaissConfig, create
from providers.inline.vector_io.faiss import provider as faiss_provider
from stack.apis.inference import EmbeddingsResponse
from stack.apis.vector_dbs import VectorDB
from stack.apis.vector_io import Chunk
from stack.errors import BadRequestError
from stack.registry import ProviderContext, ProviderSpec


class VectorTextEmbeddings:
    """Test double for the inference router: "x,y,z" embeds as [x, y, z]."""

    def __init__(self):
        self.calls = []

    async def embeddings(self, model_id, contents):
        self.calls.append(len(contents))
        return EmbeddingsResponse(embeddings=[[float(v) for v in text.split(",")] for text in contents])


def context(tmp_path: Path, inference) -> ProviderContext:
    spec = ProviderSpec(api="vector_io", provider_type="inline::faiss", config=FaissConfig, factory=create)
    return ProviderContext("faiss", spec, "test", tmp_path, deps={"inference": inference})


DB = VectorDB(identifier="db", provider_resource_id="db", provider_id="faiss", embedding_model="fake", embedding_dimension=3)


def chunk(vector: str, doc: str, **meta) -> Chunk:
    return Chunk(content=vector, metadata={"document_id": doc, **meta})


async def start(tmp_path, **config):
    provider = await create(FaissConfig(**config), context(tmp_path, VectorTextEmbeddings()))
    await provider.register_vector_db(DB)
    return provider


async def top(provider, vector: str, k=10):
    response = await provider.query_chunks("db", vector, {"max_chunks": k, "score_threshold": -10})
    return [(c.content, c.metadata["document_id"]) for c in response.chunks]


async def crash(provider):
    """Stop without the shutdown snapshot, as a killed process would."""
    await provider.store.close()


@pytest.mark.parametrize("index_type", ["hnsw", "flat"])
async def test_rows_stored_after_the_last_snapshot_are_indexed_on_start(tmp_path, index_type):
    provider = await start(tmp_path, index_type=index_type)
    await provider.insert_chunks("db", [chunk("1,0,0", "x"), chunk("0,1,0", "y")])
    await provider.shutdown()  # snapshot with x and y

    provider = await start(tmp_path, index_type=index_type)
    await provider.insert_chunks("db", [chunk("0,0,1", "z"), chunk("0.9,0.1,0", "x")])  # z new, x replaced
    await crash(provider)

    provider = await start(tmp_path, index_type=index_type)
    assert await top(provider, "1,0.2,0.1") == [("0.9,0.1,0", "x"), ("0,1,0", "y"), ("0,0,1", "z")]
    assert (tmp_path / "faiss_store.db").exists()
    await provider.shutdown()


async def test_many_replacements_rebuild_the_index(tmp_path, monkeypatch):
    monkeypatch.setattr(faiss_provider, "MIN_DEAD_FOR_REBUILD", 4)
    provider = await start(tmp_path)
    for round_ in range(6):
        await provider.insert_chunks("db", [chunk(f"1,{round_},0", "a"), chunk(f"0,1,{round_}", "b")])
    entry = provider.indexes["db"]
    assert entry.index.ntotal < 12  # dead positions were dropped
    assert entry.dead <= 4
    assert await top(provider, "1,5,0") == [("1,5,0", "a"), ("0,1,5", "b")]
    await crash(provider)
    provider = await start(tmp_path)
    assert await top(provider, "1,5,0") == [("1,5,0", "a"), ("0,1,5", "b")]


async def test_llama_stack_kvstore_config_and_l2(tmp_path):
    path = tmp_path / "elsewhere" / "faiss_store.db"
    path.parent.mkdir()
    config = {"kvstore": {"type": "sqlite", "namespace": None, "db_path": str(path)}, "metric": "l2"}
    provider = await start(tmp_path, **config)
    await provider.insert_chunks("db", [chunk("3,0,0", "far"), chunk("1,0,0", "near")])
    response = await provider.query_chunks("db", "1,0,0", {"max_chunks": 2})
    assert [c.metadata["document_id"] for c in response.chunks] == ["near", "far"]
    assert response.scores == pytest.approx([1.0, 1 / 3])  # 1 / (1 + Euclidean distance)
    await provider.shutdown()
    assert path.exists() and not (tmp_path / "faiss_store.db").exists()


async def test_embeddings_of_another_dimension_are_400_naming_the_chunk(tmp_path):
    provider = await start(tmp_path)
    with pytest.raises(BadRequestError) as info:
        await provider.insert_chunks("db", [chunk("1,0,0", "a"), chunk("1,0", "b")])
    assert info.value.field == "chunks[1].embedding"
    with pytest.raises(BadRequestError) as info:
        await provider.query_chunks("db", "1,0,0,0")
    assert info.value.field == "query.embedding"
    assert await top(provider, "1,0,0") == []  # the refused insert stored nothing
    await provider.shutdown()


async def test_inserts_embed_in_batches(tmp_path):
    provider = await create(FaissConfig(embedding_batch_size=4), context(tmp_path, embeddings := VectorTextEmbeddings()))
    await provider.register_vector_db(DB)
    await provider.insert_chunks("db", [chunk(f"{i},1,0", str(i)) for i in range(10)])
    assert sorted(embeddings.calls) == [2, 4, 4]
    await provider.shutdown()
