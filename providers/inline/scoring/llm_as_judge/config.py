"""Config of ``inline::llm-as-judge`` (pydantic only: cheap to import)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class LlmAsJudgeScoringConfig(BaseModel):
    """``config:`` of an ``inline::llm-as-judge`` provider; ``config: {}`` takes the defaults."""

    model_config = ConfigDict(extra="forbid")

    max_concurrency: int = Field(
        8, ge=1, le=256,
        description="Judge requests in flight at once (over all rows and calls); a remote judge runs this many rows at once",
    )
    max_tokens: int = Field(
        512, ge=0, description="Most tokens of one judgement; 0: the judge model's limit",
    )
