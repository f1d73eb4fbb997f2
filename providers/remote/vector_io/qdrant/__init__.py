"""``remote::qdrant``: vector DBs as collections of a Qdrant server."""

from __future__ import annotations

import stack
from stack.registry import ProviderContext, ProviderSpec

from .config import QdrantRemoteConfig

__all__ = ["QdrantRemoteConfig", "create", "register_providers"]


async def create(config: QdrantRemoteConfig, context: ProviderContext):
    from providers.utils.vector_io.qdrant import QdrantVectorIO, remote_client

    provider = QdrantVectorIO(config, context, await remote_client(config))
    return provider


@stack.hookimpl
def register_providers(register):
    register(
        ProviderSpec(
            api="vector_io",
            provider_type="remote::qdrant",
            config=QdrantRemoteConfig,
            factory=create,
            api_dependencies=("inference",),
            description="A Qdrant server through qdrant-client",
        )
    )
