"""``inline::qdrant``: vector DBs as collections of qdrant-client's embedded (local) mode."""

from __future__ import annotations

import stack
from stack.registry import ProviderContext, ProviderSpec

from .config import QdrantLocalConfig

__all__ = ["QdrantLocalConfig", "create", "register_providers"]


async def create(config: QdrantLocalConfig, context: ProviderContext):
    from providers.utils.vector_io.qdrant import QdrantVectorIO, local_client  # qdrant_client loads here

    provider = QdrantVectorIO(config, context, await local_client(config, context))
    return provider


@stack.hookimpl
def register_providers(register):
    register(
        ProviderSpec(
            api="vector_io",
            provider_type="inline::qdrant",
            config=QdrantLocalConfig,
            factory=create,
            api_dependencies=("inference",),
            description="Qdrant's embedded local mode (qdrant-client), stored under the data directory",
        )
    )
