"""Config of ``inline::huggingface`` post-training (pydantic only: no torch at start-up)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from providers.utils.inference.transformers_models import (
    DEVICE_PATTERN,
    TransformersModelConfig,
)
from stack.apis.post_training import LoraFinetuningConfig

# torchtune's names of the attention projections (llama-stack's lora_attn_modules) -> Llama's in transformers
ATTN_MODULES = {"q_proj": "q_proj", "k_proj": "k_proj", "v_proj": "v_proj", "output_proj": "o_proj", "o_proj": "o_proj"}
TRAINING_DTYPES = {"bf16": "bfloat16", "fp16": "float16", "fp32": "float32"}


class HuggingFacePostTrainingConfig(BaseModel):
    """``config: {}`` works: base models are the stack's ``inline::transformers`` models,
    checkpoints go under ``$POLYSTACK_HOME/<image_name>/post_training``."""

    model_config = ConfigDict(extra="forbid")

    models: dict[str, TransformersModelConfig] = Field(
        default_factory=dict,
        description="Base models to train besides the stack's inline::transformers models: id -> where the "
        "weights are (as inline::transformers' `models:` entries). Nothing is downloaded",
    )
    checkpoint_root: str | None = Field(
        None,
        description="Directory checkpoints are written under (default $POLYSTACK_HOME/<image_name>/post_training); "
        "a request's checkpoint_dir must lie inside it (a relative one is relative to it)",
    )
    device: str = Field("auto", pattern=DEVICE_PATTERN, description="'auto': cuda when torch sees a GPU, else cpu")
    max_seq_len: int = Field(1024, ge=8, description="Tokens of a training example kept (the rest is cut)")
    max_rows: int = Field(100_000, ge=1, description="Most dataset rows one job reads")
    rows_in_page: int = Field(1000, ge=1, le=10_000, description="Rows read from the dataset per page")
    dpo_lora: LoraFinetuningConfig = Field(
        default_factory=lambda: LoraFinetuningConfig(
            lora_attn_modules=["q_proj", "v_proj", "output_proj"], apply_lora_to_mlp=True,
            apply_lora_to_output=False, rank=8, alpha=16),
        description="The LoRA adapter preference optimization trains (its request has no algorithm for it)",
    )
    seed: int = Field(0, description="Seed of shuffling, adapter initialization and dropout")
