"""Config of the ``inline::sql`` prompt-logs provider (pydantic only: cheap to import)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from stack.storage import StoreConfig


class SqlPromptLogsConfig(BaseModel):
    """``config:`` of an ``inline::sql`` prompt-logs provider; ``config: {}`` works."""

    model_config = ConfigDict(extra="forbid")

    store: StoreConfig | None = Field(
        None,
        description="Where prompts, versions, logs, sessions and feedback are kept (a SQL store: sqlite or "
        "postgres; replicas sharing one postgres database see the same logs). "
        "Unset: sqlite at $POLYSTACK_HOME/<image_name>/prompt_logs.db",
    )
