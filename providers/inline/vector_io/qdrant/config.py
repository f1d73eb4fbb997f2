"""``config:`` of ``inline::qdrant`` (qdrant-client's embedded local mode)."""

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


class QdrantLocalConfig(QdrantCommonConfig):
    """Every key has a default: ``config: {}`` keeps collections in ``$POLYSTACK_HOME/<image_name>/qdrant``."""

    path: str | None = Field(
        None,
        description="Folder of the embedded Qdrant storage ('~' is expanded; ':memory:' keeps it in memory). "
        "Unset: $POLYSTACK_HOME/<image_name>/qdrant. One process at a time may open it",
    )
