"""Config of ``inline::torchtune`` (llama-stack 0.1.0's TorchtunePostTrainingConfig), run on the
``inline::huggingface`` machinery (pydantic only)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from .config import HuggingFacePostTrainingConfig


class TorchtunePostTrainingConfig(BaseModel):
    """``config:`` of ``inline::torchtune``; ``{}`` works."""

    model_config = ConfigDict(extra="forbid")

    torch_seed: int | None = Field(None, description="Seed of shuffling, adapter initialization and dropout "
                                   "(unset: 0, so runs repeat)")
    checkpoint_format: Literal["meta", "huggingface"] | None = Field(
        "meta", description="Accepted for llama-stack compatibility. Checkpoints are always written as PEFT (LoRA) "
        "adapters in Hugging Face format, which inline::transformers and inline::meta-reference serve")

    def huggingface_config(self) -> HuggingFacePostTrainingConfig:
        return HuggingFacePostTrainingConfig(seed=self.torch_seed if self.torch_seed is not None else 0)
