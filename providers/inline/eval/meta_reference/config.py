"""Config of the ``inline::meta-reference`` eval provider (pydantic only: cheap to import)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class MetaReferenceEvalConfig(BaseModel):
    """``config: {}`` works: jobs and their results live in the stack's job store."""

    model_config = ConfigDict(extra="forbid")

    max_concurrency: int = Field(
        8, ge=1, le=256, description="Rows generated at once; a remote candidate (vLLM) runs them side by side"
    )
    rows_in_page: int = Field(500, ge=1, le=10_000, description="Rows read from the dataset per page")
    kvstore: dict[str, Any] | None = Field(
        None, description="Accepted for llama-stack 0.1.x run configs; results live in the stack's job store"
    )
