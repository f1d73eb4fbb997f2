"""The ``inline::faiss`` provider: one FAISS index per vector DB, persisted in a KV store.

Storage (keys in the provider's KV store, ``<id>`` URL-quoted):

- ``chunks:<id>:<seq>``: the rows of one insert (at most ``BATCH_ROWS``), each
  ``[row, chunk, vector]`` with the vector as base64 float32 (as indexed). These
  are the truth: written before an insert returns.
- ``index:<id>``: a snapshot of the FAISS index (``faiss.serialize_index``) and
  the row id of each index position. Written when the index has doubled since the
  last snapshot, after a compaction, and at shutdown; on start the snapshot is
  loaded and rows it lacks are added, so a crash costs only re-adding those.

FAISS cannot remove from an HNSW index, so deleted rows stay in the index as
dead positions that searches skip (they fetch ``k + dead`` neighbours); when the
dead outnumber the live (and 1024), the index is rebuilt from the live vectors.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from stack.apis.vector_dbs import VectorDB
from stack.apis.vector_io import Chunk
from stack.registry import ProviderContext
from stack.storage import KVStore, SqliteStoreConfig, kvstore_from_config

from providers.utils.lazy_module import LazyModule
from providers.utils.vector_io.base import QueryParams, VectorIOProvider, l2_score
from .config import FaissConfig

log = logging.getLogger(__name__)
# imported with the first index made or loaded: a server with no vector DB yet
# (a fresh starter) pays neither their import time nor their memory
faiss = LazyModule("faiss")
np = LazyModule("numpy")

#: rows per ``chunks:`` key; a row id is ``seq * BATCH_ROWS + i``
BATCH_ROWS = 1024
#: dead positions tolerated before a rebuild (and at least as many as live ones)
MIN_DEAD_FOR_REBUILD = 1024
#: an exact (flat) search over more vectors than this runs in a thread
FLAT_INLINE_LIMIT = 20_000


def _b64(array: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(array).tobytes()).decode("ascii")


def _unb64(text: str, dtype: Any) -> np.ndarray:
    return np.frombuffer(base64.b64decode(text), dtype=dtype)


@dataclass
class _Row:
    row: int
    chunk: dict[str, Any]
    document_id: str | None


@dataclass
class _Index:
    """One vector DB in memory: the index and what each of its positions holds."""

    db: VectorDB
    index: Any
    rowids: list[int] = field(default_factory=list)  # row id of each index position
    live: dict[int, _Row] = field(default_factory=dict)  # position -> row, live rows only
    documents: dict[str, set[int]] = field(default_factory=dict)  # document id -> positions
    batches: dict[int, set[int]] = field(default_factory=dict)  # chunks: seq -> live positions
    next_seq: int = 0
    snapshot_size: int = 0
    dirty: bool = False  # the index differs from its snapshot
    write_lock: asyncio.Lock = field(default_factory=asyncio.Lock)  # one insert/compaction at a time
    faiss_lock: asyncio.Lock = field(default_factory=asyncio.Lock)  # no search while the index changes

    @property
    def dead(self) -> int:
        return len(self.rowids) - len(self.live)

    def place(self, position: int, row: _Row) -> None:
        self.live[position] = row
        if row.document_id is not None:
            self.documents.setdefault(row.document_id, set()).add(position)
        self.batches.setdefault(row.row // BATCH_ROWS, set()).add(position)


class FaissVectorIO(VectorIOProvider):
    provider_type = "inline::faiss"

    def __init__(self, config: FaissConfig, context: ProviderContext) -> None:
        super().__init__(context, embedding_batch_size=config.embedding_batch_size)
        self.config = config
        self.store: KVStore | None = None
        self.indexes: dict[str, _Index] = {}

    async def initialize(self) -> None:
        self.store = await kvstore_from_config(
            self.config.kvstore or SqliteStoreConfig(), default_path=self.context.data_dir / "faiss_store.db"
        )

    async def shutdown(self) -> None:
        if self.store is None:
            return
        for entry in list(self.indexes.values()):
            async with entry.write_lock:
                if entry.dirty:
                    await self._snapshot(entry)
        await self.store.close()
        self.store = None

    # -- the index ---------------------------------------------------------------

    def _kind(self, dimension: int) -> str:
        c = self.config
        shape = f"hnsw{c.hnsw_m}" if c.index_type == "hnsw" else "flat"
        return f"{shape}/{c.metric}/{dimension}"

    def _new_index(self, dimension: int) -> Any:
        c = self.config
        metric = faiss.METRIC_INNER_PRODUCT if c.metric == "cosine" else faiss.METRIC_L2
        if c.index_type == "flat":
            return faiss.IndexFlatIP(dimension) if c.metric == "cosine" else faiss.IndexFlatL2(dimension)
        index = faiss.IndexHNSWFlat(dimension, c.hnsw_m, metric)
        index.hnsw.efConstruction = c.hnsw_ef_construction
        index.hnsw.efSearch = c.hnsw_ef_search
        return index

    def _prepare(self, vectors: np.ndarray) -> np.ndarray:
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if self.config.metric == "cosine":
            vectors = vectors.copy()
            faiss.normalize_L2(vectors)
        return vectors

    @staticmethod
    def _key(kind: str, db_id: str) -> str:
        return f"{kind}:{quote(db_id, safe='')}"

    async def _open(self, db: VectorDB) -> None:
        db_id = db.provider_resource_id
        current = self.indexes.get(db_id)
        if current is not None and current.db.embedding_dimension == db.embedding_dimension:
            current.db = db
            return
        entry = await self._load(db)
        self.indexes[db_id] = entry

    async def _load(self, db: VectorDB) -> _Index:
        """The stored vector DB: the snapshot plus the rows it lacks (or an empty index)."""
        store, dim = self.store, db.embedding_dimension
        prefix = self._key("chunks", db.provider_resource_id) + ":"
        stored = await store.items(prefix)
        rows: dict[int, tuple[dict, str]] = {}
        next_seq = 0
        for key, value in stored:
            seq = int(key[len(prefix):])
            next_seq = max(next_seq, seq + 1)
            for row, chunk, vector in json.loads(value)["rows"]:
                rows[row] = (chunk, vector)
        if rows and len(_unb64(next(iter(rows.values()))[1], np.float32)) != dim:
            log.warning("vector DB %r: stored vectors are not of %d dimensions; starting it empty", db.identifier, dim)
            await self._delete_data(db.provider_resource_id)
            rows, next_seq = {}, 0

        entry = _Index(db, self._new_index(dim), next_seq=next_seq)
        snapshot = await store.get(self._key("index", db.provider_resource_id)) if rows else None
        if snapshot is not None:
            record = json.loads(snapshot)
            if record.get("kind") == self._kind(dim):
                entry.index = await asyncio.to_thread(
                    faiss.deserialize_index, _unb64(record["index"], np.uint8).copy()
                )
                entry.rowids = _unb64(record["rowids"], np.int64).tolist()
                entry.snapshot_size = len(entry.rowids)
        if self.config.index_type == "hnsw":
            entry.index.hnsw.efSearch = self.config.hnsw_ef_search
        for position, row in enumerate(entry.rowids):
            if row in rows:
                chunk, _ = rows[row]
                entry.place(position, _Row(row, chunk, _doc_of(chunk)))
        indexed = set(entry.rowids)
        missing = sorted(r for r in rows if r not in indexed)
        if missing:
            vectors = np.stack([_unb64(rows[r][1], np.float32) for r in missing])
            await asyncio.to_thread(entry.index.add, vectors)
            for row in missing:
                entry.place(len(entry.rowids), _Row(row, rows[row][0], _doc_of(rows[row][0])))
                entry.rowids.append(row)
            entry.dirty = True
        log.info("vector DB %r: %d chunks loaded (%d added to the snapshot)", db.identifier, len(entry.live), len(missing))
        return entry

    async def _drop(self, db: VectorDB) -> None:
        entry = self.indexes.pop(db.provider_resource_id, None)
        if entry is not None:
            async with entry.write_lock:
                await self._delete_data(db.provider_resource_id)
        else:
            await self._delete_data(db.provider_resource_id)

    async def _delete_data(self, db_id: str) -> None:
        for key, _ in await self.store.items(self._key("chunks", db_id) + ":"):
            await self.store.delete(key)
        await self.store.delete(self._key("index", db_id))

    # -- insert ------------------------------------------------------------------

    async def _add(self, db: VectorDB, chunks: list[Chunk], vectors: np.ndarray, replace: set[str]) -> None:
        entry = self.indexes[db.provider_resource_id]
        async with entry.write_lock:
            vectors = await asyncio.to_thread(self._prepare, vectors)
            dumped = [c.model_dump(mode="json") for c in chunks]
            # the new rows are stored before the old ones go: a crash in between
            # leaves duplicates that the next re-ingest removes, never a lost document
            rows = []
            for start in range(0, len(chunks), BATCH_ROWS):
                seq = entry.next_seq
                entry.next_seq += 1
                part = [
                    [seq * BATCH_ROWS + i, dumped[start + i], _b64(vectors[start + i])]
                    for i in range(min(BATCH_ROWS, len(chunks) - start))
                ]
                await self.store.set(self._batch_key(db, seq), json.dumps({"rows": part}))
                rows += [r[0] for r in part]
            await self._forget_documents(entry, replace)
            async with entry.faiss_lock:
                await asyncio.to_thread(entry.index.add, vectors)
            for row, chunk in zip(rows, dumped):
                entry.place(len(entry.rowids), _Row(row, chunk, _doc_of(chunk)))
                entry.rowids.append(row)
            entry.dirty = True
            if entry.dead > max(MIN_DEAD_FOR_REBUILD, len(entry.live)):
                await self._rebuild(entry)
            elif len(entry.rowids) >= max(BATCH_ROWS, 2 * entry.snapshot_size):
                await self._snapshot(entry)

    def _batch_key(self, db: VectorDB, seq: int) -> str:
        return f"{self._key('chunks', db.provider_resource_id)}:{seq:012d}"

    async def _forget_documents(self, entry: _Index, documents: set[str]) -> None:
        """Delete every stored row of ``documents``; rewrite the batches that keep other rows."""
        positions = set()
        for doc in documents:
            positions |= entry.documents.pop(doc, set())
        if not positions:
            return
        touched = {entry.live[p].row // BATCH_ROWS for p in positions}
        for p in positions:
            del entry.live[p]
        for seq in touched:
            remaining = entry.batches[seq] - positions
            key = self._batch_key(entry.db, seq)
            if not remaining:
                del entry.batches[seq]
                await self.store.delete(key)
                continue
            entry.batches[seq] = remaining
            ordered = sorted(remaining)
            async with entry.faiss_lock:
                vectors = await asyncio.to_thread(_reconstruct, entry.index, ordered)
            part = [[entry.live[p].row, entry.live[p].chunk, _b64(v)] for p, v in zip(ordered, vectors)]
            await self.store.set(key, json.dumps({"rows": part}))

    async def _rebuild(self, entry: _Index) -> None:
        """A new index of the live rows only; positions are renumbered."""
        positions = sorted(entry.live)
        async with entry.faiss_lock:
            def build():
                vectors = _reconstruct(entry.index, positions)
                index = self._new_index(entry.db.embedding_dimension)
                if len(positions):
                    index.add(vectors)
                return index

            entry.index = await asyncio.to_thread(build)
        rows = [entry.live[p] for p in positions]
        entry.rowids, entry.live, entry.documents, entry.batches = [], {}, {}, {}
        for row in rows:
            entry.place(len(entry.rowids), row)
            entry.rowids.append(row.row)
        log.info("vector DB %r: index rebuilt with %d live chunks", entry.db.identifier, len(rows))
        await self._snapshot(entry)

    async def _snapshot(self, entry: _Index) -> None:
        async with entry.faiss_lock:
            data = await asyncio.to_thread(faiss.serialize_index, entry.index)
        record = {
            "kind": self._kind(entry.db.embedding_dimension),
            "rowids": _b64(np.asarray(entry.rowids, dtype=np.int64)),
            "index": _b64(data),
        }
        await self.store.set(self._key("index", entry.db.provider_resource_id), json.dumps(record))
        entry.snapshot_size = len(entry.rowids)
        entry.dirty = False

    # -- query -------------------------------------------------------------------

    async def _search(self, db: VectorDB, vector: np.ndarray, params: QueryParams) -> list[tuple[Chunk, float]]:
        entry = self.indexes[db.provider_resource_id]
        total = len(entry.rowids)
        if not entry.live:
            return []
        query = self._prepare(vector.reshape(1, -1))
        fetch = min(total, params.max_chunks + entry.dead)
        async with entry.faiss_lock:
            index = entry.index
            if self.config.index_type == "hnsw":
                # HNSW answers in well under a millisecond: a thread hop would cost more than it saves
                index.hnsw.efSearch = max(self.config.hnsw_ef_search, fetch)
                distances, positions = index.search(query, fetch)
            elif total > FLAT_INLINE_LIMIT:
                distances, positions = await asyncio.to_thread(index.search, query, fetch)
            else:
                distances, positions = index.search(query, fetch)
        cosine = self.config.metric == "cosine"
        hits = []
        for distance, position in zip(distances[0].tolist(), positions[0].tolist()):
            row = entry.live.get(position)
            if row is None:
                continue
            score = float(distance) if cosine else l2_score(max(distance, 0.0) ** 0.5)  # faiss: squared L2
            if score < params.score_threshold:
                continue
            hits.append((Chunk.model_validate(row.chunk), score))
            if len(hits) == params.max_chunks:
                break
        return hits


def _doc_of(chunk: dict[str, Any]) -> str | None:
    value = (chunk.get("metadata") or {}).get("document_id")
    return None if value is None else str(value)


def _reconstruct(index: Any, positions: list[int]) -> np.ndarray:
    if not positions:
        return np.empty((0, index.d), dtype=np.float32)
    return np.stack([index.reconstruct(int(p)) for p in positions])
