"""``inline::meta-reference`` agents: sessions and turns in which a model calls
tools (server-side built-ins and client tools), guarded by shields, persisted
in a KV store. The provider type keeps llama-stack's name so its run configs load."""

from __future__ import annotations

import stack
from stack.registry import ProviderContext, ProviderSpec

from .config import MetaReferenceAgentsConfig

__all__ = ["MetaReferenceAgentsConfig", "create", "register_providers"]


async def create(config: MetaReferenceAgentsConfig, context: ProviderContext):
    from .provider import MetaReferenceAgents

    agents = MetaReferenceAgents(config, context)
    await agents.initialize()
    return agents


@stack.hookimpl
def register_providers(register):
    register(
        ProviderSpec(
            api="agents",
            provider_type="inline::meta-reference",
            config=MetaReferenceAgentsConfig,
            factory=create,
            api_dependencies=("inference", "models"),
            optional_api_dependencies=("safety", "shields", "tool_runtime", "tool_groups", "vector_io", "vector_dbs"),
            description="Agents: multi-turn sessions with a tool loop (built-in and client tools), shields and persistence",
        )
    )
