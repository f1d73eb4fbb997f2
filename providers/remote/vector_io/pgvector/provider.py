"""The ``remote::pgvector`` provider: async psycopg, one table per vector DB.

Table ``polystack_vectors`` lists the vector DBs (id, table, dimension); each
vector DB's rows live in a table of its own with a b-tree on ``document_id``
and an HNSW index on the embedding. Vectors travel in pgvector's binary
format (an insert is one binary ``COPY``). Every change is one transaction,
so replicas sharing the database see whole inserts only.

The HNSW index is built once the table holds ``hnsw_index_min_rows`` rows,
by the insert that gets it there: pgvector builds a graph in memory more than
ten times faster than it adds rows to an existing one (each row added is a
graph search plus rewriting the neighbour lists of up to 2m rows on their
pages), and below ~10k rows scanning every row is exact and about as fast.
Once built, the index is kept up to date row by row, and never rebuilt.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import struct
import time

import numpy as np
import psycopg
from psycopg.adapt import Dumper
from psycopg.conninfo import make_conninfo
from psycopg.pq import Format
from psycopg.types import TypeInfo
from psycopg_pool import AsyncConnectionPool

from providers.utils.vector_io.base import QueryParams, VectorIOProvider, l2_score
from stack.apis.vector_dbs import VectorDB
from stack.apis.vector_io import Chunk
from stack.errors import StackError, UpstreamError
from stack.registry import ProviderContext
from stack.storage import RETRY_AFTER, StorageUnavailableError

from .config import PGVectorConfig

log = logging.getLogger(__name__)

REGISTRY = "polystack_vectors"
#: kB of ``maintenance_work_mem`` per unit of a memory setting
_UNITS_KB = {"": 1, "kB": 1, "MB": 1024, "GB": 1024**2, "TB": 1024**3}


def _setting_kb(value: str) -> int:
    number, unit = re.fullmatch(r"\s*(\d+)\s*(kB|MB|GB|TB)?\s*", value).groups()
    return int(number) * _UNITS_KB[unit or ""]


def build_memory_kb(rows: int, dim: int, m: int, cap_kb: int) -> int:
    """``maintenance_work_mem`` for building an HNSW index over ``rows`` rows: what
    pgvector's in-memory graph needs with room to spare (2.8 kB a row measured
    for 384 dimensions and m 32 on pgvector 0.6; estimated 3.5 kB), at most
    ``cap_kb``. Sized to the table because a parallel build reserves all of
    it as shared memory at once (``/dev/shm``, 64 MB by default in Docker)."""
    need = rows * (4 * dim + 48 * m + 512) // 1024 + 8 * 1024
    return max(1024, min(cap_kb, need))


def _table_name(db_id: str) -> str:
    """A safe, stable table name for ``db_id`` (readable part + hash, under 63 chars)."""
    readable = re.sub(r"[^a-z0-9_]", "_", db_id.lower())[:32]
    return f"vs_{readable}_{hashlib.sha1(db_id.encode()).hexdigest()[:10]}"


def _vector_dumper(oid: int) -> type[Dumper]:
    class VectorDumper(Dumper):
        """numpy float vectors in pgvector's binary format: dim, unused, float4s (big-endian)."""

        format = Format.BINARY

        def dump(self, obj: np.ndarray) -> bytes:
            return struct.pack(">HH", obj.shape[0], 0) + np.asarray(obj, dtype=">f4").tobytes()

    VectorDumper.oid = oid
    return VectorDumper


MAX_EF_SEARCH = 1000  # pgvector's upper bound of hnsw.ef_search


class PGVectorVectorIO(VectorIOProvider):
    provider_type = "remote::pgvector"

    def __init__(self, config: PGVectorConfig, context: ProviderContext) -> None:
        super().__init__(context, embedding_batch_size=config.embedding_batch_size)
        self.config = config
        self.pool: AsyncConnectionPool | None = None
        self.tables: dict[str, str] = {}
        c = config
        params = {"host": c.host, "port": c.port, "dbname": c.db, "user": c.user, "password": c.password}
        self.conninfo = make_conninfo(**{k: v for k, v in params.items() if v is not None})
        self.label = f"host={c.host} port={c.port} db={c.db}"

    async def initialize(self) -> None:
        try:
            async with await psycopg.AsyncConnection.connect(
                self.conninfo, autocommit=True, connect_timeout=self.config.connect_timeout
            ) as conn:
                async with conn.transaction():
                    await conn.execute("SELECT pg_advisory_xact_lock(hashtext('polystack_vectors'))")
                    await conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
                    await conn.execute(
                        f"CREATE TABLE IF NOT EXISTS {REGISTRY} (vector_db_id TEXT PRIMARY KEY, "
                        "table_name TEXT NOT NULL, dimension INTEGER NOT NULL)"
                    )
                info = await TypeInfo.fetch(conn, "vector")
        except psycopg.Error as exc:
            raise UpstreamError(f"pgvector: cannot prepare PostgreSQL at {self.label}: {exc}") from exc
        if info is None:
            raise StackError(f"pgvector: the vector type is missing at {self.label}")
        self.vector_oid = info.oid
        dumper = _vector_dumper(info.oid)

        async def configure(conn: psycopg.AsyncConnection) -> None:
            conn.adapters.register_dumper(np.ndarray, dumper)

        self.pool = AsyncConnectionPool(
            self.conninfo, min_size=1, max_size=self.config.pool_max_size, kwargs={"autocommit": True},
            configure=configure, timeout=self.config.connect_timeout, open=False, name="polystack-pgvector",
            reconnect_timeout=RETRY_AFTER,  # give up a reconnect after about a Retry-After: the next request tries again
        )
        await self.pool.open(wait=True, timeout=self.config.connect_timeout)

    async def shutdown(self) -> None:
        if self.pool is not None:
            await self.pool.close()
            self.pool = None

    def _connection(self):
        return _Translating(self.pool, self.label)

    # -- vector DBs ----------------------------------------------------------------

    def _index_name(self, table: str) -> str:
        return f"{table}_hnsw_{self.config.metric}"

    async def _has_index(self, conn: psycopg.AsyncConnection, table: str) -> bool:
        cur = await conn.execute("SELECT to_regclass(%s) IS NOT NULL", (self._index_name(table),))
        return (await cur.fetchone())[0]

    async def _lock_for_index(self, conn: psycopg.AsyncConnection, table: str) -> bool:
        """True when the table has no HNSW index yet; then the table stays locked
        against other writers (not readers) until the transaction ends, so that
        exactly one of them builds it, and none deadlocks doing so."""
        if await self._has_index(conn, table):
            return False
        await conn.execute(f"LOCK TABLE {table} IN SHARE ROW EXCLUSIVE MODE")
        return not await self._has_index(conn, table)

    async def _build_index_when_due(self, conn: psycopg.AsyncConnection, db_id: str, table: str, dim: int) -> None:
        """Build the HNSW index when the table holds ``hnsw_index_min_rows`` rows (under ``_lock_for_index``)."""
        c = self.config
        cur = await conn.execute(f"SELECT count(*) FROM (SELECT 1 FROM {table} LIMIT %s) AS due", (c.hnsw_index_min_rows,))
        if (await cur.fetchone())[0] < c.hnsw_index_min_rows:
            return
        rows = (await (await conn.execute(f"SELECT count(*) FROM {table}")).fetchone())[0]
        if c.maintenance_work_mem is not None:
            memory = build_memory_kb(rows, dim, c.hnsw_m, _setting_kb(c.maintenance_work_mem))
            await conn.execute(f"SET LOCAL maintenance_work_mem = '{memory}kB'")
        ops = "vector_cosine_ops" if c.metric == "cosine" else "vector_l2_ops"
        started = time.perf_counter()
        await conn.execute(
            f"CREATE INDEX {self._index_name(table)} ON {table} USING hnsw (embedding {ops}) "
            f"WITH (m = {c.hnsw_m}, ef_construction = {c.hnsw_ef_construction})"
        )
        if rows:
            log.info("vector DB %r: built its HNSW index over %d rows in %.1f s", db_id, rows, time.perf_counter() - started)

    async def _open(self, db: VectorDB) -> None:
        db_id, dim, table = db.provider_resource_id, db.embedding_dimension, _table_name(db.provider_resource_id)
        async with self._connection() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (table,))
            row = await (await conn.execute(f"SELECT dimension FROM {REGISTRY} WHERE vector_db_id = %s", (db_id,))).fetchone()
            if row is not None and row[0] != dim:
                log.warning("vector DB %r: stored vectors have %d dimensions, not %d; starting it empty", db_id, row[0], dim)
                await conn.execute(f"DROP TABLE IF EXISTS {table}")
            await conn.execute(
                f"INSERT INTO {REGISTRY} VALUES (%s, %s, %s) ON CONFLICT (vector_db_id) DO UPDATE SET dimension = %s",
                (db_id, table, dim, dim),
            )
            await conn.execute(
                f"CREATE TABLE IF NOT EXISTS {table} (id BIGSERIAL PRIMARY KEY, document_id TEXT, "
                f"chunk JSONB NOT NULL, embedding vector({dim}) NOT NULL)"
            )
            await conn.execute(f"CREATE INDEX IF NOT EXISTS {table}_doc ON {table} (document_id)")
            # with hnsw_index_min_rows 0 (or a table already that large), the index now
            if await self._lock_for_index(conn, table):
                await self._build_index_when_due(conn, db_id, table, dim)
        self.tables[db_id] = table

    async def _drop(self, db: VectorDB) -> None:
        table = _table_name(db.provider_resource_id)
        async with self._connection() as conn, conn.transaction():
            await conn.execute(f"DROP TABLE IF EXISTS {table}")
            await conn.execute(f"DELETE FROM {REGISTRY} WHERE vector_db_id = %s", (db.provider_resource_id,))
        self.tables.pop(db.provider_resource_id, None)

    # -- insert and query ------------------------------------------------------------

    async def _add(self, db: VectorDB, chunks: list[Chunk], vectors: np.ndarray, replace: set[str]) -> None:
        table = self.tables[db.provider_resource_id]
        async with self._connection() as conn, conn.transaction():
            unindexed = await self._lock_for_index(conn, table)
            if replace:
                await conn.execute(f"DELETE FROM {table} WHERE document_id = ANY(%s)", (sorted(replace),))
            async with conn.cursor().copy(
                f"COPY {table} (document_id, chunk, embedding) FROM STDIN (FORMAT BINARY)"
            ) as copy:
                copy.set_types(["text", "jsonb", self.vector_oid])
                for chunk, vector in zip(chunks, vectors):
                    doc = chunk.metadata.get("document_id")
                    await copy.write_row((None if doc is None else str(doc), chunk.model_dump(mode="json"), vector))
            if unindexed:
                await self._build_index_when_due(conn, db.provider_resource_id, table, db.embedding_dimension)

    async def _search(self, db: VectorDB, vector: np.ndarray, params: QueryParams) -> list[tuple[Chunk, float]]:
        table = self.tables[db.provider_resource_id]
        op = "<=>" if self.config.metric == "cosine" else "<->"
        # pgvector refuses an ef_search over 1000: a larger max_chunks gets what a 1000-wide index scan finds
        ef = min(max(self.config.hnsw_ef_search, params.max_chunks), MAX_EF_SEARCH)
        async with self._connection() as conn, conn.transaction():
            await conn.execute(f"SET LOCAL hnsw.ef_search = {int(ef)}")
            cur = await conn.execute(
                f"SELECT chunk, embedding {op} %s AS distance FROM {table} ORDER BY distance LIMIT %s",
                (np.asarray(vector, dtype=np.float32), params.max_chunks),
            )
            rows = await cur.fetchall()
        cosine = self.config.metric == "cosine"
        hits = []
        for chunk, distance in rows:
            score = 1.0 - float(distance) if cosine else l2_score(distance)
            if score >= params.score_threshold:
                hits.append((Chunk.model_validate(chunk if isinstance(chunk, dict) else json.loads(chunk)), score))
        return hits


class _Translating:
    """A pooled connection whose psycopg errors become stack errors naming the server:
    PostgreSQL unreachable (refused, dropped, restarting) is a 503 with Retry-After,
    like the stack's own stores; any other database error an UpstreamError."""

    def __init__(self, pool: AsyncConnectionPool, label: str) -> None:
        self.pool = pool
        self._cm = pool.connection()
        self.label = label

    async def _translated(self, exc: psycopg.Error) -> StackError:
        if isinstance(exc, psycopg.OperationalError):  # the pool's other connections likely died too
            await self.pool.check()
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            return StorageUnavailableError(f"pgvector: PostgreSQL at {self.label} is unavailable: {first}")
        return UpstreamError(f"pgvector: PostgreSQL at {self.label}: {exc}")

    async def __aenter__(self) -> psycopg.AsyncConnection:
        try:
            return await self._cm.__aenter__()
        except psycopg.Error as exc:
            raise await self._translated(exc) from exc

    async def __aexit__(self, exc_type, exc, tb) -> bool | None:
        result = await self._cm.__aexit__(exc_type, exc, tb)
        if isinstance(exc, psycopg.Error):
            raise await self._translated(exc) from exc
        return result
