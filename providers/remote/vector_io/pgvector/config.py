"""``config:`` of a ``remote::pgvector`` provider; the connection keys are llama-stack 0.1.x's."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class PGVectorConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    host: str = Field("localhost", description="Server host name, IP, or Unix socket directory")
    port: int = Field(5432, ge=1, le=65535, description="Server port")
    db: str = Field("postgres", description="Database name")
    user: str | None = Field("postgres", description="User name (null: libpq default, e.g. $PGUSER)")
    password: str | None = Field(None, repr=False, description="Password (null: libpq default, e.g. $PGPASSWORD)")
    metric: Literal["cosine", "l2"] = Field(
        "cosine", description="cosine: score = cosine similarity; l2: score = 1 / (1 + Euclidean distance)"
    )
    hnsw_m: int = Field(32, ge=2, le=100, description="HNSW index: neighbours per node (pgvector's m)")
    hnsw_ef_construction: int = Field(64, ge=4, le=1000, description="HNSW index: search width while building")
    hnsw_ef_search: int = Field(
        128, ge=1, le=1000, description="HNSW: search width of a query (raised to max_chunks when that is larger)"
    )
    embedding_batch_size: int = Field(64, ge=1, le=4096, description="Texts per embeddings call while inserting")
    pool_max_size: int = Field(10, ge=1, description="Most connections this process opens")
    connect_timeout: float = Field(10.0, gt=0, description="Seconds to wait for a connection")
