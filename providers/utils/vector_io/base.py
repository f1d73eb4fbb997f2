"""What every vector IO provider shares: embedding chunks through the inference
API, checking query params, and the register/insert/query flow. A provider
implements ``_open``, ``_drop``, ``_add`` and ``_search`` on top of it.

numpy is imported with the first embedding (``LazyModule``); still, import
this module only from provider implementation modules (never from a
package's ``__init__`` or config).
"""

from __future__ import annotations

import asyncio
import logging
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

from providers.utils.lazy_module import LazyModule

from stack.apis._content import content_text
from stack.apis.vector_dbs import VectorDB
from stack.apis.vector_io import Chunk, QueryChunksResponse
from stack.errors import BadRequestError, NotFoundError, StackError

log = logging.getLogger(__name__)
np = LazyModule("numpy")

#: llama-stack 0.1.x: ``params.get("max_chunks", 3)`` and ``params.get("score_threshold", 0.0)``
DEFAULT_MAX_CHUNKS = 3
DEFAULT_SCORE_THRESHOLD = 0.0
#: embedding calls of one insert that run at once (each of ``embedding_batch_size`` texts)
EMBED_CONCURRENCY = 4


@dataclass(frozen=True)
class QueryParams:
    max_chunks: int = DEFAULT_MAX_CHUNKS
    score_threshold: float = DEFAULT_SCORE_THRESHOLD


def parse_params(params: dict[str, Any] | None) -> QueryParams:
    """``params`` of a query, checked; keys other than these two are ignored, as llama-stack does."""
    params = params or {}
    k = params.get("max_chunks", DEFAULT_MAX_CHUNKS)
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise BadRequestError(f"must be a positive integer, got {k!r}", field="params.max_chunks")
    threshold = params.get("score_threshold", DEFAULT_SCORE_THRESHOLD)
    if threshold is None:
        threshold = float("-inf")
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or threshold != threshold:
        raise BadRequestError(f"must be a number, got {threshold!r}", field="params.score_threshold")
    return QueryParams(k, float(threshold))


def document_id(chunk: Chunk) -> str | None:
    value = chunk.metadata.get("document_id")
    return None if value is None else str(value)


def group_by_document(chunks: list[Chunk]) -> set[str]:
    """The document ids an insert replaces (chunks without one are only added)."""
    return {d for d in map(document_id, chunks) if d is not None}


class VectorIOProvider(ABC):
    """The VectorIO API over an index a subclass provides.

    Vector DBs are known by their ``provider_resource_id`` (what the router passes
    as ``vector_db_id``). Scores are higher-is-better: cosine similarity for
    ``cosine``, ``1 / (1 + L2 distance)`` for ``l2``.
    """

    provider_type = "vector_io"

    def __init__(self, context: Any, *, embedding_batch_size: int = 64) -> None:
        self.context = context
        self.inference = context.deps.get("inference")
        self.embedding_batch_size = embedding_batch_size
        self.dbs: dict[str, VectorDB] = {}

    # -- what a provider implements --------------------------------------------

    @abstractmethod
    async def _open(self, db: VectorDB) -> None:
        """Create the vector DB's index, or load the one that is stored."""

    @abstractmethod
    async def _drop(self, db: VectorDB) -> None:
        """Delete the vector DB and all its data."""

    @abstractmethod
    async def _add(self, db: VectorDB, chunks: list[Chunk], vectors: np.ndarray, replace: set[str]) -> None:
        """Delete the chunks of the documents in ``replace``, then add ``chunks``."""

    @abstractmethod
    async def _search(self, db: VectorDB, vector: np.ndarray, params: QueryParams) -> list[tuple[Chunk, float]]:
        """At most ``params.max_chunks`` (chunk, score) pairs scoring at least the threshold, best first."""

    # -- registry hooks --------------------------------------------------------

    async def register_vector_db(self, vector_db: VectorDB) -> VectorDB:
        if vector_db.embedding_dimension < 1:
            raise BadRequestError("must be positive", field="embedding_dimension")
        await self._open(vector_db)
        self.dbs[vector_db.provider_resource_id] = vector_db
        return vector_db

    async def unregister_vector_db(self, vector_db: VectorDB) -> None:
        await self._drop(vector_db)
        self.dbs.pop(vector_db.provider_resource_id, None)

    def _db(self, vector_db_id: str) -> VectorDB:
        db = self.dbs.get(vector_db_id)
        if db is None:
            raise NotFoundError("Vector DB", vector_db_id, self.dbs)
        return db

    # -- the API -----------------------------------------------------------------

    async def insert_chunks(self, vector_db_id: str, chunks: list[Chunk], ttl_seconds: int | None = None) -> None:
        db = self._db(vector_db_id)
        if not chunks:
            return
        texts = []
        for i, chunk in enumerate(chunks):
            text = content_text(chunk.content)
            if not text.strip():
                raise BadRequestError("has no text to embed", field=f"chunks[{i}].content")
            texts.append(text)
        vectors = await self.embed(db, texts, field="chunks")
        await self._add(db, chunks, vectors, group_by_document(chunks))

    async def query_chunks(self, vector_db_id: str, query: Any, params: dict[str, Any] | None = None) -> QueryChunksResponse:
        db = self._db(vector_db_id)
        checked = parse_params(params)
        text = content_text(query)
        if not text.strip():
            raise BadRequestError("has no text to embed", field="query")
        vector = (await self.embed(db, [text], field="query"))[0]
        hits = await self._search(db, vector, checked)
        return QueryChunksResponse(chunks=[c for c, _ in hits], scores=[s for _, s in hits])

    async def embed(self, db: VectorDB, texts: list[str], *, field: str) -> np.ndarray:
        """float32 vectors of ``texts`` from the vector DB's embedding model, in
        batches of ``embedding_batch_size``; 400 naming ``field`` when the model
        returns vectors of another dimension than the vector DB's."""
        if self.inference is None:
            raise StackError(f"{self.provider_type} needs the inference api to embed text")
        size = self.embedding_batch_size
        gate = asyncio.Semaphore(EMBED_CONCURRENCY)

        async def one(batch: list[str]) -> list[list[float]]:
            async with gate:
                response = await self.inference.embeddings(model_id=db.embedding_model, contents=batch)
            return response.embeddings

        parts = await asyncio.gather(*(one(texts[i:i + size]) for i in range(0, len(texts), size)))
        rows = [row for part in parts for row in part]
        if len(rows) != len(texts):
            raise StackError(f"model {db.embedding_model!r} returned {len(rows)} embeddings for {len(texts)} texts")
        bad = next((i for i, row in enumerate(rows) if len(row) != db.embedding_dimension), None)
        if bad is not None:
            where = f"{field}[{bad}]" if field == "chunks" else field
            raise BadRequestError(
                f"the embedding has {len(rows[bad])} dimensions; vector DB {db.identifier!r} holds vectors of "
                f"{db.embedding_dimension} (embedding model {db.embedding_model!r})",
                field=f"{where}.embedding",
            )
        return np.asarray(rows, dtype=np.float32).reshape(len(rows), db.embedding_dimension)


def l2_score(distance: float) -> float:
    """Higher-is-better score of a Euclidean distance."""
    return 1.0 / (1.0 + max(float(distance), 0.0))
