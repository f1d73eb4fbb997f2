"""``inline::huggingface`` post-training: LoRA fine-tuning and DPO with transformers and peft, in a
worker process of the stack's job runner; checkpoints are served by ``inline::transformers``."""

from __future__ import annotations

import stack
from stack.registry import ProviderContext, ProviderSpec

from .config import HuggingFacePostTrainingConfig

__all__ = ["HuggingFacePostTrainingConfig", "create", "register_providers"]


async def create(config: HuggingFacePostTrainingConfig, context: ProviderContext):
    from .provider import HuggingFacePostTraining

    return HuggingFacePostTraining(config, context)


@stack.hookimpl
def register_providers(register):
    register(
        ProviderSpec(
            api="post_training",
            provider_type="inline::huggingface",
            config=HuggingFacePostTrainingConfig,
            factory=create,
            api_dependencies=("datasetio",),
            optional_api_dependencies=("models",),
            description="LoRA fine-tuning and DPO with transformers and peft; checkpoints served by inline::transformers",
        )
    )
