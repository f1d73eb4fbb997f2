"""``remote::pgvector``: vector DBs as PostgreSQL tables with a pgvector HNSW index."""

from __future__ import annotations

import stack
from stack.registry import ProviderContext, ProviderSpec

from .config import PGVectorConfig

__all__ = ["PGVectorConfig", "create", "register_providers"]


async def create(config: PGVectorConfig, context: ProviderContext):
    from .provider import PGVectorVectorIO

    provider = PGVectorVectorIO(config, context)
    await provider.initialize()
    return provider


@stack.hookimpl
def register_providers(register):
    register(
        ProviderSpec(
            api="vector_io",
            provider_type="remote::pgvector",
            config=PGVectorConfig,
            factory=create,
            api_dependencies=("inference",),
            description="PostgreSQL + pgvector: one table per vector DB with an HNSW index",
        )
    )
