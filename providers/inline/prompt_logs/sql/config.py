"""Config of the ``inline::sql`` prompt-logs provider (pydantic only: cheap to import)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from stack.storage import StoreConfig


class ModelPrice(BaseModel):
    model_config = ConfigDict(extra="forbid")

    input: float = Field(0.0, ge=0, description="Dollars per million prompt tokens")
    output: float = Field(0.0, ge=0, description="Dollars per million output tokens")


class ChatCompletionLogs(BaseModel):
    """Write every chat completion the server answers as a prompt log."""

    model_config = ConfigDict(extra="forbid")

    path_prefix: str = Field("chat-completions/", description="Completions of model M are logs of the prompt <path_prefix>M")
    prices: dict[str, ModelPrice] = Field(
        default_factory=dict, description="Prices by model id, for the logs' prompt_cost and output_cost; unlisted models log no cost"
    )


class SqlPromptLogsConfig(BaseModel):
    """``config:`` of an ``inline::sql`` prompt-logs provider; ``config: {}`` works."""

    model_config = ConfigDict(extra="forbid")

    store: StoreConfig | None = Field(
        None,
        description="Where prompts, versions, logs, sessions and feedback are kept (a SQL store: sqlite or "
        "postgres; replicas sharing one postgres database see the same logs). "
        "Unset: sqlite at $POLYSTACK_HOME/<image_name>/prompt_logs.db",
    )
    log_chat_completions: ChatCompletionLogs | None = Field(
        None,
        description="Also log every POST /v1/chat/completions the server answers (needs the inference API); "
        "unset: only what clients log",
    )
