"""``inline::rag-runtime``: the ``builtin::rag`` tool group — ``knowledge_search``,
and the rag-tool routes (insert documents into vector DBs, query them)."""

from __future__ import annotations

import stack
from stack.registry import ProviderContext, ProviderSpec

from .config import RAGRuntimeConfig

__all__ = ["RAGRuntimeConfig", "create", "register_providers"]


async def create(config: RAGRuntimeConfig, context: ProviderContext):
    from .provider import RAGToolRuntime

    return RAGToolRuntime(config, vector_io=context.deps["vector_io"], inference=context.deps["inference"],
                          fetcher=context.fetcher)


@stack.hookimpl
def register_providers(register):
    register(
        ProviderSpec(
            api="tool_runtime",
            provider_type="inline::rag-runtime",
            config=RAGRuntimeConfig,
            factory=create,
            api_dependencies=("vector_io", "inference"),
            description="The builtin::rag tool group: knowledge_search, rag-tool insert (text, Markdown, HTML, PDF) and query",
        )
    )
