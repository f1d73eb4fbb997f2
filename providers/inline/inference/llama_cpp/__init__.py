"""``inline::llama-cpp``: GGUF models in-process through llama-cpp-python."""

from __future__ import annotations

import os

import stack
from stack.registry import ProviderContext, ProviderSpec

from .config import LlamaCppConfig, LlamaCppModelConfig

__all__ = ["LlamaCppConfig", "LlamaCppModelConfig", "create", "register_providers"]


async def create(config: LlamaCppConfig, context: ProviderContext):
    # OpenMP threads that spin while waiting collapse throughput when other
    # work (another model, the server) shares the cores: measured 2-20 tok/s
    # spinning vs ~48 tok/s passive on 2 busy cores (docs/performance.md).
    # Set before llama.cpp's OpenMP runtime starts; a user's value wins.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
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
