"""``inline::faiss``: vector DBs as FAISS indexes in-process, persisted in a KV store."""

from __future__ import annotations

import stack
from stack.registry import ProviderContext, ProviderSpec

from .config import FaissConfig

__all__ = ["FaissConfig", "create", "register_providers"]


async def create(config: FaissConfig, context: ProviderContext):
    from .provider import FaissVectorIO  # faiss and numpy load with the first index, not at start-up

    provider = FaissVectorIO(config, context)
    await provider.initialize()
    return provider


@stack.hookimpl
def register_providers(register):
    register(
        ProviderSpec(
            api="vector_io",
            provider_type="inline::faiss",
            config=FaissConfig,
            factory=create,
            api_dependencies=("inference",),
            description="FAISS indexes in-process (HNSW or flat), persisted in a KV store",
        )
    )
