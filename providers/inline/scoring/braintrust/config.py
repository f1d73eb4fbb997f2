"""Config of ``inline::braintrust`` (pydantic only: cheap to import)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class BraintrustScoringConfig(BaseModel):
    """``config:`` of an ``inline::braintrust`` provider; ``config: {}`` judges with the
    embedded model through this server's own OpenAI-compatible routes."""

    model_config = ConfigDict(extra="forbid")

    openai_base_url: str | None = Field(
        None, description="OpenAI-compatible endpoint the autoevals scorers call (ending in /v1); default: this "
        "server, http://127.0.0.1:<port>/v1, the port `polystack run` listens on",
    )
    openai_api_key: str | None = Field(
        None, description="Key sent to that endpoint: one of this server's API keys when it requires them, "
        "or the remote endpoint's key",
    )
    judge_model: str = Field("SmolLM2-135M-Instruct", description="Chat model of the LLM-based scorers")
    embedding_model: str = Field(
        "all-MiniLM-L6-v2", description="Embedding model of answer-similarity, answer-correctness and answer-relevancy",
    )
    max_concurrency: int = Field(4, ge=1, le=64, description="Rows scored at once (each in a thread of its own)")
    timeout: float = Field(120.0, gt=0, description="Seconds one request of a scorer may take")
