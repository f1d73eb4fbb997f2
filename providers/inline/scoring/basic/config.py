"""Config of ``inline::basic`` (pydantic only: cheap to import)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class BasicScoringConfig(BaseModel):
    """``config:`` of an ``inline::basic`` scoring provider: nothing to set (``config: {}``)."""

    model_config = ConfigDict(extra="forbid")
