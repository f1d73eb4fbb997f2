"""``inline::qdrant`` and ``remote::qdrant``: one Qdrant collection per vector DB.

Points carry the chunk and its ``document_id`` as payload (with a keyword
index on ``document_id``, so re-ingesting a document deletes by filter). The
embedded local mode computes in Python, so its calls run on one thread of
their own, off the event loop; a server is talked to with the async client.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from qdrant_client import AsyncQdrantClient, QdrantClient, models

from stack.apis.vector_dbs import VectorDB
from stack.apis.vector_io import Chunk
from stack.errors import UpstreamError
from stack.registry import ProviderContext

from .base import QueryParams, VectorIOProvider, l2_score

log = logging.getLogger(__name__)

#: points per upsert call
UPSERT_BATCH = 1024


def collection_name(db_id: str) -> str:
    readable = re.sub(r"[^A-Za-z0-9_-]", "_", db_id)[:40]
    return f"polystack_{readable}_{hashlib.sha1(db_id.encode()).hexdigest()[:10]}"


class _LocalCalls:
    """The sync local client, each call on the one thread that owns it."""

    server = False

    def __init__(self, client: QdrantClient) -> None:
        self.client = client
        self.executor = ThreadPoolExecutor(1, thread_name_prefix="qdrant-local")

    async def __call__(self, name: str, **kwargs: Any) -> Any:
        method = getattr(self.client, name)
        return await asyncio.get_running_loop().run_in_executor(self.executor, lambda: method(**kwargs))

    async def close(self) -> None:
        await self("close")
        self.executor.shutdown(wait=True)


class _RemoteCalls:
    def __init__(self, client: AsyncQdrantClient, label: str, *, server: bool = True) -> None:
        self.client = client
        self.label = label
        self.server = server  # False for location ':memory:' (qdrant-client's local mode)

    async def __call__(self, name: str, **kwargs: Any) -> Any:
        try:
            return await getattr(self.client, name)(**kwargs)
        except Exception as exc:
            if type(exc).__module__.startswith(("qdrant_client", "httpx", "grpc")):
                raise UpstreamError(f"qdrant at {self.label}: {type(exc).__name__}: {exc}") from exc
            raise

    async def close(self) -> None:
        await self.client.close()


async def local_client(config: Any, context: ProviderContext) -> _LocalCalls:
    if config.path == ":memory:":
        return _LocalCalls(QdrantClient(location=":memory:"))
    path = Path(config.path).expanduser() if config.path else context.data_dir / "qdrant"
    path.mkdir(parents=True, exist_ok=True)
    calls = _LocalCalls.__new__(_LocalCalls)
    calls.executor = ThreadPoolExecutor(1, thread_name_prefix="qdrant-local")
    # opening loads every stored collection: on the client's own thread
    calls.client = await asyncio.get_running_loop().run_in_executor(calls.executor, lambda: QdrantClient(path=str(path)))
    return calls


async def remote_client(config: Any) -> _RemoteCalls:
    keys = ("location", "url", "host", "port", "grpc_port", "prefer_grpc", "https", "api_key", "prefix", "timeout")
    kwargs = {k: getattr(config, k) for k in keys if getattr(config, k) is not None}
    label = config.url or config.location or f"{config.host or 'localhost'}:{config.port}"
    calls = _RemoteCalls(AsyncQdrantClient(**kwargs), label, server=config.location != ":memory:")
    await calls("get_collections")  # fail at start-up, naming the server, when it is not there
    return calls


class QdrantVectorIO(VectorIOProvider):
    def __init__(self, config: Any, context: ProviderContext, calls: _LocalCalls | _RemoteCalls) -> None:
        super().__init__(context, embedding_batch_size=config.embedding_batch_size)
        self.provider_type = context.spec.provider_type
        self.config = config
        self.call = calls

    async def shutdown(self) -> None:
        await self.call.close()

    @property
    def _distance(self) -> Any:
        return models.Distance.COSINE if self.config.metric == "cosine" else models.Distance.EUCLID

    async def _open(self, db: VectorDB) -> None:
        name = collection_name(db.provider_resource_id)
        if await self.call("collection_exists", collection_name=name):
            info = await self.call("get_collection", collection_name=name)
            params = info.config.params.vectors
            if params.size == db.embedding_dimension and params.distance == self._distance:
                return
            log.warning("vector DB %r: stored collection has other vector settings; starting it empty", db.identifier)
            await self.call("delete_collection", collection_name=name)
        await self.call(
            "create_collection",
            collection_name=name,
            vectors_config=models.VectorParams(size=db.embedding_dimension, distance=self._distance),
        )
        if self.call.server:  # local mode has no payload indexes (and warns)
            await self.call(
                "create_payload_index", collection_name=name, field_name="document_id",
                field_schema=models.PayloadSchemaType.KEYWORD,
            )

    async def _drop(self, db: VectorDB) -> None:
        await self.call("delete_collection", collection_name=collection_name(db.provider_resource_id))

    async def _add(self, db: VectorDB, chunks: list[Chunk], vectors: np.ndarray, replace: set[str]) -> None:
        name = collection_name(db.provider_resource_id)
        if replace:
            await self.call(
                "delete", collection_name=name, wait=True,
                points_selector=models.FilterSelector(filter=models.Filter(must=[
                    models.FieldCondition(key="document_id", match=models.MatchAny(any=sorted(replace)))
                ])),
            )
        for start in range(0, len(chunks), UPSERT_BATCH):
            points = []
            for chunk, vector in zip(chunks[start:start + UPSERT_BATCH], vectors[start:start + UPSERT_BATCH]):
                doc = chunk.metadata.get("document_id")
                points.append(models.PointStruct(
                    id=str(uuid.uuid4()), vector=vector.tolist(),
                    payload={"chunk": chunk.model_dump(mode="json"), "document_id": None if doc is None else str(doc)},
                ))
            await self.call("upsert", collection_name=name, points=points, wait=True)

    async def _search(self, db: VectorDB, vector: np.ndarray, params: QueryParams) -> list[tuple[Chunk, float]]:
        ef = self.config.hnsw_ef_search
        response = await self.call(
            "query_points",
            collection_name=collection_name(db.provider_resource_id),
            query=vector.tolist(),
            limit=params.max_chunks,
            with_payload=True,
            search_params=models.SearchParams(hnsw_ef=max(ef, params.max_chunks)) if ef else None,
        )
        cosine = self.config.metric == "cosine"
        hits = []
        for point in response.points:
            score = float(point.score) if cosine else l2_score(point.score)
            if score >= params.score_threshold:
                hits.append((Chunk.model_validate(point.payload["chunk"]), score))
        return hits
