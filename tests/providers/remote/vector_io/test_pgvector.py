"""remote::pgvector beyond the conformance suite: the HNSW index built once a
table holds ``hnsw_index_min_rows`` rows (and kept up to date after), concurrent
inserts crossing that size, the memory of a build, binary COPY round trips.
Embeddings come from a test double that reads a text like "1,0,0" as its vector."""

from __future__ import annotations

import asyncio

import psycopg
import pytest
from pydantic import ValidationError

from providers.remote.vector_io.pgvector import PGVectorConfig, create
from providers.remote.vector_io.pgvector import provider as pg_provider
from stack.apis.inference import EmbeddingsResponse
from stack.apis.vector_dbs import VectorDB
from stack.apis.vector_io import Chunk
from stack.registry import ProviderContext, ProviderSpec

DB = VectorDB(identifier="db", provider_resource_id="db", provider_id="pgvector", embedding_model="fake",
              embedding_dimension=3)
TABLE = pg_provider._table_name("db")
INDEX = f"{TABLE}_hnsw_cosine"


class VectorTextEmbeddings:
    """Test double for the inference router: "x,y,z" embeds as [x, y, z]."""

    async def embeddings(self, model_id, contents):
        return EmbeddingsResponse(embeddings=[[float(v) for v in text.split(",")] for text in contents])


@pytest.fixture
def pg(postgres_config):
    return {"host": postgres_config.host, "port": postgres_config.port, "db": postgres_config.db,
            "user": postgres_config.user}


@pytest.fixture
def sql(pg):
    """A plain connection to the test database, for looking behind the provider."""
    conn = psycopg.connect(host=pg["host"], port=pg["port"], dbname=pg["db"], user=pg["user"], autocommit=True)
    yield conn
    conn.close()


async def start(pg, tmp_path, **config):
    spec = ProviderSpec(api="vector_io", provider_type="remote::pgvector", config=PGVectorConfig, factory=create)
    context = ProviderContext("pgvector", spec, "test", tmp_path, deps={"inference": VectorTextEmbeddings()})
    provider = await create(PGVectorConfig(**pg, **config), context)
    await provider.register_vector_db(DB)
    return provider


def chunk(vector: str, doc: str | None, **meta) -> Chunk:
    return Chunk(content=vector, metadata={"document_id": doc, **meta} if doc is not None else meta)


def points(n: int, offset: int = 0) -> list[Chunk]:
    """n distinct directions in the positive octant, document ids p<i>."""
    return [chunk(f"1,{(i + offset) / 10},{1 / (1 + i + offset)}", f"p{i + offset}") for i in range(n)]


async def top(provider, vector: str, k=100):
    response = await provider.query_chunks("db", vector, {"max_chunks": k, "score_threshold": -10})
    return [c.metadata.get("document_id") for c in response.chunks]


def has_index(sql) -> bool:
    return sql.execute("SELECT to_regclass(%s) IS NOT NULL", (INDEX,)).fetchone()[0]


def through_index(sql, vector: str, k: int = 100) -> list[str]:
    """Document ids nearest to ``vector`` read through the HNSW index only (the planner may not use it
    on a tiny table by itself)."""
    with sql.transaction():
        sql.execute("SET LOCAL enable_seqscan = off")
        plan = "\n".join(r[0] for r in sql.execute(
            f"EXPLAIN SELECT document_id FROM {TABLE} ORDER BY embedding <=> %s::vector LIMIT %s", (f"[{vector}]", k)))
        assert INDEX in plan, plan
        rows = sql.execute(f"SELECT document_id FROM {TABLE} ORDER BY embedding <=> %s::vector LIMIT %s",
                           (f"[{vector}]", k)).fetchall()
    return [r[0] for r in rows]


async def test_the_index_is_built_by_the_insert_that_reaches_min_rows(pg, sql, tmp_path):
    provider = await start(pg, tmp_path, hnsw_index_min_rows=8)
    await provider.insert_chunks("db", points(5))
    assert not has_index(sql)
    exact = await top(provider, "1,0.2,0.3")  # a scan of every row: exact
    assert sorted(exact) == sorted(f"p{i}" for i in range(5))

    await provider.insert_chunks("db", points(5, offset=5))  # 10 rows >= 8
    assert has_index(sql)
    want = await top(provider, "1,0.2,0.3")
    assert len(want) == 10
    assert through_index(sql, "1,0.2,0.3") == want

    # later inserts and replacements go into the same index, row by row
    await provider.insert_chunks("db", [chunk("0,0,1", "new"), chunk("0,1,0.01", "p3")])
    assert through_index(sql, "0,0,1", k=1) == ["new"]
    assert through_index(sql, "0,1,0.01", k=1) == ["p3"]
    assert (await top(provider, "0,1,0.01"))[:1] == ["p3"]
    assert sql.execute(f"SELECT count(*) FROM {TABLE} WHERE document_id = 'p3'").fetchone()[0] == 1
    assert len(await top(provider, "1,1,1")) == 11
    indexes = sql.execute("SELECT indexname FROM pg_indexes WHERE tablename = %s ORDER BY 1", (TABLE,)).fetchall()
    assert [r[0] for r in indexes] == sorted([INDEX, f"{TABLE}_doc", f"{TABLE}_pkey"])
    await provider.shutdown()


async def test_min_rows_zero_indexes_the_empty_table(pg, sql, tmp_path):
    provider = await start(pg, tmp_path, hnsw_index_min_rows=0)
    assert has_index(sql)
    await provider.insert_chunks("db", points(3))
    assert through_index(sql, "1,0,1", k=1) == ["p0"]
    await provider.shutdown()


async def test_max_chunks_beyond_pgvectors_ef_search_bound_is_answered(pg, tmp_path):
    # hnsw.ef_search stops at 1000; a query asking for more was a 502 from PostgreSQL
    provider = await start(pg, tmp_path, hnsw_index_min_rows=0)
    await provider.insert_chunks("db", points(3))
    assert sorted(await top(provider, "1,0,1", k=5000)) == ["p0", "p1", "p2"]
    await provider.shutdown()


async def test_an_unindexed_table_already_large_enough_is_indexed_on_start(pg, sql, tmp_path):
    provider = await start(pg, tmp_path, hnsw_index_min_rows=100)
    await provider.insert_chunks("db", points(6))
    await provider.shutdown()
    assert not has_index(sql)

    provider = await start(pg, tmp_path, hnsw_index_min_rows=5)
    assert has_index(sql)
    assert sorted(through_index(sql, "1,0,0")) == sorted(f"p{i}" for i in range(6))
    await provider.shutdown()


async def test_concurrent_inserts_crossing_min_rows_build_one_index(pg, sql, tmp_path):
    provider = await start(pg, tmp_path, hnsw_index_min_rows=10)
    await asyncio.gather(*(provider.insert_chunks("db", points(4, offset=4 * i)) for i in range(5)))
    assert has_index(sql)
    assert sorted(through_index(sql, "1,0.5,0.5")) == sorted(f"p{i}" for i in range(20))
    await provider.shutdown()


async def test_the_build_memory_is_sized_to_the_table(pg, sql, tmp_path, monkeypatch):
    calls = []

    def recording(rows, dim, m, cap_kb):
        calls.append((rows, dim, m, cap_kb))
        return 2048

    monkeypatch.setattr(pg_provider, "build_memory_kb", recording)
    provider = await start(pg, tmp_path, hnsw_index_min_rows=4, maintenance_work_mem="256MB")
    await provider.insert_chunks("db", points(3))
    assert calls == []
    await provider.insert_chunks("db", points(3, offset=3))
    assert calls == [(6, 3, 32, 256 * 1024)]
    await provider.shutdown()

    calls.clear()
    sql.execute(f"DROP TABLE {TABLE}")
    provider = await start(pg, tmp_path, hnsw_index_min_rows=0, maintenance_work_mem=None)
    await provider.shutdown()
    assert has_index(sql)
    assert calls == []  # null: the server's setting


def test_build_memory_estimate():
    # 100k x 384 at m 32: pgvector 0.6 needed ~270 MB (128 MB held 48,578 rows)
    assert 300 * 1024 < pg_provider.build_memory_kb(100_000, 384, 32, 1024**2) < 400 * 1024
    assert pg_provider.build_memory_kb(100_000, 384, 32, 64 * 1024) == 64 * 1024  # capped
    assert pg_provider.build_memory_kb(0, 384, 32, 1024**2) == 8 * 1024
    assert pg_provider.build_memory_kb(0, 3, 2, 100) == 1024  # PostgreSQL's minimum
    assert pg_provider._setting_kb("1GB") == 1024**2
    assert pg_provider._setting_kb(" 512 MB") == 512 * 1024
    assert pg_provider._setting_kb("2048") == 2048


@pytest.mark.parametrize("value", ["lots", "1 GiB", "-1MB", ""])
def test_maintenance_work_mem_is_checked(value):
    with pytest.raises(ValidationError):
        PGVectorConfig(maintenance_work_mem=value)


async def test_chunks_round_trip_through_binary_copy(pg, tmp_path):
    provider = await start(pg, tmp_path)
    stored = [
        Chunk(content="0,0,1", metadata={"document_id": "ünï", "tags": ["a", "b"], "n": 1.5, "nested": {"x": None}}),
        chunk("0,1,0", None, note="no document id"),
        Chunk(content=[{"type": "text", "text": "1,0,0"}], metadata={"document_id": 7}),
    ]
    await provider.insert_chunks("db", stored)
    response = await provider.query_chunks("db", "0,0,1", {"max_chunks": 3, "score_threshold": -10})
    assert response.chunks[0] == stored[0]
    assert response.scores[0] == pytest.approx(1.0, abs=1e-6)
    assert len(response.chunks) == 3 and all(c in response.chunks for c in stored)  # JSONB reorders keys only
    await provider.shutdown()
