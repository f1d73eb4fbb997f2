"""Config fields shared by ``inline::qdrant`` and ``remote::qdrant`` (pydantic only: cheap to import)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class QdrantCommonConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    metric: Literal["cosine", "l2"] = Field(
        "cosine", description="cosine: score = cosine similarity; l2: score = 1 / (1 + Euclidean distance)"
    )
    hnsw_ef_search: int | None = Field(
        None, ge=1, description="HNSW search width of a query (server mode; null: Qdrant's default)"
    )
    embedding_batch_size: int = Field(64, ge=1, le=4096, description="Texts per embeddings call while inserting")
