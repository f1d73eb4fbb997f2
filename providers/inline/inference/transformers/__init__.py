"""``inline::transformers``: Hugging Face checkpoints (or GGUF files) run in-process with torch, on CUDA when present."""

from __future__ import annotations

import stack
from stack.registry import ProviderContext, ProviderSpec

from .config import GGUFInPackage, TransformersConfig, TransformersModelConfig

__all__ = ["GGUFInPackage", "TransformersConfig", "TransformersModelConfig", "create", "register_providers"]


async def create(config: TransformersConfig, context: ProviderContext):
    from .inference import TransformersInference  # torch and transformers load later, in the worker threads

    return TransformersInference(config, context)


@stack.hookimpl
def register_providers(register):
    register(
        ProviderSpec(
            api="inference",
            provider_type="inline::transformers",
            config=TransformersConfig,
            factory=create,
            description="Hugging Face checkpoints and GGUF files in-process with torch (CUDA when available)",
        )
    )
