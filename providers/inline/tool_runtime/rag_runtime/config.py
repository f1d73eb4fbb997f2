"""Config of ``inline::rag-runtime`` (pydantic only: cheap to import)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class RAGRuntimeConfig(BaseModel):
    """``config:`` of an ``inline::rag-runtime`` provider; ``config: {}`` works."""

    model_config = ConfigDict(extra="forbid")

    chunk_overlap_ratio: float = Field(
        0.25, ge=0, lt=1, description="Tokens each chunk shares with the previous one, as a fraction of the chunk size"
    )
    fetch_timeout_seconds: float = Field(
        30.0, gt=0, le=3600, description="Time limit of fetching an http(s) document (server.fetch may set a lower one)"
    )
    max_document_bytes: int = Field(
        50 << 20, ge=1024,
        description="Largest document (fetched, read or decoded) accepted, in bytes (server.fetch may set a lower one)",
    )
    allow_file_uris: bool = Field(
        True,
        description="Accept file:// URIs, within the directories server.fetch.allow_dirs lists (none by default)",
    )
