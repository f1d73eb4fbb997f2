"""``inline::transformers``: Hugging Face checkpoints (or GGUF files) run in-process with torch, on CUDA when present.

This package also registers llama-stack's ``inline::meta-reference`` and
``inline::meta-reference-quantized``: Llama checkpoints run on the same machinery.
"""

from __future__ import annotations

import stack
from stack.registry import ProviderContext, ProviderSpec

from .config import GGUFInPackage, TransformersConfig, TransformersModelConfig
from .meta_reference_config import MetaReferenceInferenceConfig, MetaReferenceQuantizedInferenceConfig

__all__ = ["GGUFInPackage", "MetaReferenceInferenceConfig", "MetaReferenceQuantizedInferenceConfig",
           "TransformersConfig", "TransformersModelConfig", "create", "register_providers"]


async def create(config: TransformersConfig, context: ProviderContext):
    from .inference import TransformersInference  # torch and transformers load later, in the worker threads

    return TransformersInference(config, context)


async def create_meta_reference(config: MetaReferenceInferenceConfig, context: ProviderContext):
    from .meta_reference import create as create_provider

    return await create_provider(config, context)


async def create_meta_reference_quantized(config: MetaReferenceQuantizedInferenceConfig, context: ProviderContext):
    from .meta_reference import create_quantized

    return await create_quantized(config, context)


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
    register(
        ProviderSpec(
            api="inference",
            provider_type="inline::meta-reference",
            config=MetaReferenceInferenceConfig,
            factory=create_meta_reference,
            description="A Llama checkpoint (Meta or Hugging Face format) from llama-stack's places, run by transformers",
        )
    )
    register(
        ProviderSpec(
            api="inference",
            provider_type="inline::meta-reference-quantized",
            config=MetaReferenceQuantizedInferenceConfig,
            factory=create_meta_reference_quantized,
            description="inline::meta-reference with bf16, fp8 (torchao) or int4 (bitsandbytes) weights",
        )
    )
