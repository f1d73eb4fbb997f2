"""``config:`` of an ``inline::faiss`` provider (llama-stack 0.1.x's ``kvstore`` key included)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from stack.storage import StoreConfig


class FaissConfig(BaseModel):
    """Every key has a default: ``config: {}`` keeps an HNSW index per vector DB in
    ``$POLYSTACK_HOME/<image_name>/faiss_store.db``."""

    model_config = ConfigDict(extra="forbid")

    kvstore: StoreConfig | None = Field(
        None,
        description="Where vector DBs, their chunks and index snapshots are kept (a KV store: sqlite or postgres). "
        "Unset: sqlite at $POLYSTACK_HOME/<image_name>/faiss_store.db",
    )
    index_type: Literal["hnsw", "flat"] = Field(
        "hnsw", description="hnsw: approximate search (IndexHNSWFlat), fast at any size; flat: exact, brute force"
    )
    metric: Literal["cosine", "l2"] = Field(
        "cosine",
        description="cosine: inner product of normalised vectors (score = cosine similarity); "
        "l2: Euclidean distance (score = 1 / (1 + Euclidean distance))",
    )
    hnsw_m: int = Field(32, ge=4, le=256, description="HNSW: neighbours per node (more: better recall, more memory)")
    hnsw_ef_construction: int = Field(64, ge=8, le=4096, description="HNSW: search width while building")
    hnsw_ef_search: int = Field(
        128, ge=1, le=4096, description="HNSW: search width of a query (raised to max_chunks when that is larger)"
    )
    embedding_batch_size: int = Field(64, ge=1, le=4096, description="Texts per embeddings call while inserting")
