"""``inline::vllm``: one model run by the vllm package on this machine's GPUs, as a child process
serving vLLM's OpenAI-compatible API on a loopback port (llama-stack 0.1.0's config keys)."""

from __future__ import annotations

import importlib.util

import stack
from stack.errors import ConfigError
from stack.registry import ProviderContext, ProviderSpec

from .config import VLLMConfig

__all__ = ["VLLMConfig", "create", "register_providers"]


async def create(config: VLLMConfig, context: ProviderContext):
    if importlib.util.find_spec("vllm") is None:
        raise ConfigError(f"inference provider {context.provider_id!r} (inline::vllm) needs the vllm package, which "
                          "is not installed: pip install vllm (it needs a CUDA GPU), or serve the model with "
                          "inline::meta-reference, or point remote::vllm at a vLLM server")
    from .provider import VLLMInference

    impl = VLLMInference(config, context)
    await impl.initialize()
    return impl


@stack.hookimpl
def register_providers(register):
    register(ProviderSpec(
        api="inference", provider_type="inline::vllm", config=VLLMConfig, factory=create,
        description="A Llama model run by the vllm package in a child process (GPU)",
    ))
