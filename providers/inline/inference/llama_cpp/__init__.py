"""``inline::llama-cpp``: GGUF models in-process through llama-cpp-python."""

from __future__ import annotations

import stack
from stack.registry import ProviderContext, ProviderSpec

from .config import LlamaCppConfig, LlamaCppModelConfig

__all__ = ["LlamaCppConfig", "LlamaCppModelConfig", "create", "register_providers"]


async def create(config: LlamaCppConfig, context: ProviderContext):
    from .provider import LlamaCppInference  # llama_cpp itself loads later, in the worker threads

    provider = LlamaCppInference(config, context)
    provider.start()
    return provider


@stack.hookimpl
def register_providers(register):
    register(
        ProviderSpec(
            api="inference",
            provider_type="inline::llama-cpp",
            config=LlamaCppConfig,
            factory=create,
            description="GGUF models in-process via llama-cpp-python (default: SmolLM2-135M-Instruct)",
        )
    )
