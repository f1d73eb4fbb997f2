"""``inline::huggingface`` post-training: LoRA fine-tuning and DPO with transformers and peft, in a
worker process of the stack's job runner; checkpoints are served by ``inline::transformers``.

llama-stack's ``inline::torchtune`` is registered here too: its config, this machinery."""

from __future__ import annotations

import stack
from stack.registry import ProviderContext, ProviderSpec

from .config import HuggingFacePostTrainingConfig
from .torchtune_config import TorchtunePostTrainingConfig

__all__ = ["HuggingFacePostTrainingConfig", "TorchtunePostTrainingConfig", "create", "register_providers"]


async def create(config: HuggingFacePostTrainingConfig, context: ProviderContext):
    from .provider import HuggingFacePostTraining

    return HuggingFacePostTraining(config, context)


async def create_torchtune(config: TorchtunePostTrainingConfig, context: ProviderContext):
    """llama-stack's ``inline::torchtune``: the same LoRA SFT and DPO, from its config."""
    from .provider import HuggingFacePostTraining

    return HuggingFacePostTraining(config.huggingface_config(), context)


@stack.hookimpl
def register_providers(register):
    for provider_type, config, factory, description in (
        ("inline::huggingface", HuggingFacePostTrainingConfig, create,
         "LoRA fine-tuning and DPO with transformers and peft; checkpoints served by inline::transformers"),
        ("inline::torchtune", TorchtunePostTrainingConfig, create_torchtune,
         "llama-stack's torchtune post-training config, run as inline::huggingface (LoRA SFT, DPO)"),
    ):
        register(ProviderSpec(api="post_training", provider_type=provider_type, config=config, factory=factory,
                              api_dependencies=("datasetio",), optional_api_dependencies=("models",),
                              description=description))
