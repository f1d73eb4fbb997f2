"""``config:`` of a ``remote::pgvector`` provider; the connection keys are llama-stack 0.1.x's."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from stack.storage import Password

#: a PostgreSQL memory setting: a number of kB, or a number with kB, MB, GB or TB
MEMORY_SETTING = r"^\s*\d+\s*(kB|MB|GB|TB)?\s*$"


class PGVectorConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    host: str = Field("localhost", description="Server host name, IP, or Unix socket directory")
    port: int = Field(5432, ge=1, le=65535, description="Server port")
    db: str = Field("postgres", description="Database name")
    user: str | None = Field("postgres", description="User name (null: libpq default, e.g. $PGUSER)")
    password: Password = Field(None, repr=False, description="Password (null: libpq default, e.g. $PGPASSWORD)")
    metric: Literal["cosine", "l2"] = Field(
        "cosine", description="cosine: score = cosine similarity; l2: score = 1 / (1 + Euclidean distance)"
    )
    hnsw_m: int = Field(32, ge=2, le=100, description="HNSW index: neighbours per node (pgvector's m)")
    hnsw_ef_construction: int = Field(64, ge=4, le=1000, description="HNSW index: search width while building")
    hnsw_ef_search: int = Field(
        128, ge=1, le=1000, description="HNSW: search width of a query (raised to max_chunks when that is larger)"
    )
    hnsw_index_min_rows: int = Field(
        10_000, ge=0,
        description="Create a vector DB's HNSW index once its table holds this many rows, in one build; until then "
        "queries scan every row (exact, and about as fast below ~10k rows). 0: index from the start, so every "
        "row is added to the graph one by one as it is inserted",
    )
    maintenance_work_mem: str | None = Field(
        "1GB", pattern=MEMORY_SETTING,
        description="Most memory an HNSW index build may use (PostgreSQL's maintenance_work_mem, set for the "
        "build only, sized to the table up to this). null: the server's setting",
    )
    embedding_batch_size: int = Field(64, ge=1, le=4096, description="Texts per embeddings call while inserting")
    pool_max_size: int = Field(10, ge=1, description="Most connections this process opens")
    connect_timeout: float = Field(10.0, gt=0, description="Seconds to wait for a connection")