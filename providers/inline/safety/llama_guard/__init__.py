"""``inline::llama-guard``: shields that ask a Llama Guard 3 model (any LLM the
stack serves) whether the last message of a conversation is safe."""

from __future__ import annotations

import stack
from stack.registry import ProviderContext, ProviderSpec

from .config import LlamaGuardConfig

__all__ = ["LlamaGuardConfig", "create", "register_providers"]


async def create(config: LlamaGuardConfig, context: ProviderContext):
    from .provider import LlamaGuardSafety

    return LlamaGuardSafety(config, inference=context.deps["inference"], models=context.deps.get("models"))


@stack.hookimpl
def register_providers(register):
    register(
        ProviderSpec(
            api="safety",
            provider_type="inline::llama-guard",
            config=LlamaGuardConfig,
            factory=create,
            api_dependencies=("inference",),
            # the models table, to refuse a shield whose guard model is not registered
            optional_api_dependencies=("models",),
            description="Llama Guard 3 over the inference API: the 14 hazard categories, the last message checked",
        )
    )
