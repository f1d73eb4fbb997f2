"""Config of ``inline::meta-reference`` agents (pydantic only: cheap to import)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from stack.storage import StoreConfig


class MetaReferenceAgentsConfig(BaseModel):
    """``config:`` of an ``inline::meta-reference`` agents provider; ``config: {}`` works.

    llama-stack 0.1.x run configs name the store ``persistence_store``; that key is kept.
    """

    model_config = ConfigDict(extra="forbid")

    persistence_store: StoreConfig | None = Field(
        None,
        description="Where agents, sessions, turns and steps are kept (a KV store: sqlite or postgres). "
        "Unset: sqlite at $POLYSTACK_HOME/<image_name>/agents_store.db",
    )
    document_chunk_size_in_tokens: int = Field(
        512, ge=16, le=8192, description="Chunk size used when documents attached to a turn are indexed for builtin::rag"
    )
    max_document_bytes: int = Field(
        10 << 20, ge=1, description="Largest document a turn may download by URL into the session's folder of files "
        "(for builtin::code_interpreter); the run config's server.fetch.max_bytes caps it too",
    )
