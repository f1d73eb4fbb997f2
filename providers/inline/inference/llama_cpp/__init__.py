"""``inline::llama-cpp``: GGUF models in-process through llama-cpp-python."""

from __future__ import annotations

import os

import stack
from stack.registry import ProviderContext, ProviderSpec

from .config import LlamaCppConfig, LlamaCppModelConfig

__all__ = ["LlamaCppConfig", "LlamaCppModelConfig", "create", "openmp_defaults", "register_providers"]


def openmp_defaults() -> None:
    """The OpenMP settings llama.cpp runs with; call before ``llama_cpp`` is first imported.

    OpenMP threads that spin while waiting collapse throughput when other
    work (another model, the server, other processes) shares the cores:
    2-15 tok/s spinning against 17-57 passive on 2 busy cores
    (docs/performance.md). The runtime reads this once, when it loads; a
    user's value wins.
    """
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


async def create(config: LlamaCppConfig, context: ProviderContext):
    openmp_defaults()
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
