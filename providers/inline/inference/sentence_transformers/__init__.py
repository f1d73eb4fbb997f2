"""``inline::sentence-transformers``: embedding models in-process through sentence-transformers."""

from __future__ import annotations

import stack
from stack.registry import ProviderContext, ProviderSpec

from .config import EmbeddingModelConfig, SentenceTransformersConfig

__all__ = ["EmbeddingModelConfig", "SentenceTransformersConfig", "create", "register_providers"]


async def create(config: SentenceTransformersConfig, context: ProviderContext):
    from .provider import SentenceTransformersInference  # torch loads later, in the model threads

    return SentenceTransformersInference(config, context)


@stack.hookimpl
def register_providers(register):
    register(
        ProviderSpec(
            api="inference",
            provider_type="inline::sentence-transformers",
            config=SentenceTransformersConfig,
            factory=create,
            description="Embedding models in-process via sentence-transformers (default: all-MiniLM-L6-v2, 384 dims)",
        )
    )
