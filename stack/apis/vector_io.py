"""VectorIO: insert chunks into a vector DB and query it by similarity."""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from pydantic import BaseModel

from ._content import InterleavedContent
from ._webmethod import webmethod


class Chunk(BaseModel):
    """A piece of a document; ``metadata`` travels with it (document_id, token_count, ...)."""

    content: InterleavedContent
    metadata: dict[str, Any]


class QueryChunksResponse(BaseModel):
    """Matching chunks, best first; ``scores[i]`` belongs to ``chunks[i]``."""

    chunks: list[Chunk]
    scores: list[float]


@runtime_checkable
class VectorIO(Protocol):
    @webmethod(route="/v1/vector-io/insert", method="POST", request_name="InsertChunksRequest")
    async def insert_chunks(
        self,
        vector_db_id: str,
        chunks: list[Chunk],
        ttl_seconds: int | None = None,
    ) -> None: ...

    @webmethod(route="/v1/vector-io/query", method="POST", request_name="QueryChunksRequest")
    async def query_chunks(
        self,
        vector_db_id: str,
        query: InterleavedContent,
        params: dict[str, Any] | None = None,
    ) -> QueryChunksResponse: ...


PROTOCOL = VectorIO
