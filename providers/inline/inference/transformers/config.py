"""Config of ``inline::transformers``: pydantic only (no torch, no transformers), so start-up stays fast."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from providers.utils.inference.transformers_models import DEVICE_PATTERN, Dtype, GGUFInPackage, TransformersModelConfig

__all__ = ["DEVICE_PATTERN", "GGUFInPackage", "TransformersConfig", "TransformersModelConfig"]


class TransformersConfig(BaseModel):
    """``config:`` of an ``inline::transformers`` provider."""

    model_config = ConfigDict(extra="forbid")

    models: dict[str, TransformersModelConfig] = Field(
        default_factory=dict,
        description="Provider model id -> where its weights are. Nothing is downloaded: weights must be on disk",
    )
    device: str = Field(
        "auto",
        pattern=DEVICE_PATTERN,
        description="'auto' (cuda when torch sees a GPU, else cpu), 'cpu', 'cuda', 'cuda:N' or 'mps'",
    )
    dtype: Dtype = Field(
        "auto",
        description="Weights' dtype: 'auto' is bfloat16 on a GPU that supports it (else float16) and float32 on CPU",
    )
    max_new_tokens: int = Field(
        512, ge=1, description="Tokens generated when a request sets no max_tokens (capped by the context window)"
    )
    load: Literal["background", "first_use"] = Field(
        "background",
        description="'background': load every model at start-up in its worker thread (the server is up at once; "
        "health says loading/ready); 'first_use': load a model when its first request arrives",
    )
