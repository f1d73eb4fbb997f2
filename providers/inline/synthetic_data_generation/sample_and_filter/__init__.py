"""``inline::sample-and-filter``: synthetic data from a model of the stack: candidate
answers per dialog, rated by a scoring function (an LLM judge by default) and
kept by the request's filtering function; large requests run as jobs."""

from __future__ import annotations

import stack
from stack.registry import ProviderContext, ProviderSpec

from .config import SampleAndFilterConfig

__all__ = ["SampleAndFilterConfig", "create", "register_providers"]


async def create(config: SampleAndFilterConfig, context: ProviderContext):
    from .provider import SampleAndFilter

    return SampleAndFilter(config, context)


@stack.hookimpl
def register_providers(register):
    register(
        ProviderSpec(
            api="synthetic_data_generation",
            provider_type="inline::sample-and-filter",
            config=SampleAndFilterConfig,
            factory=create,
            api_dependencies=("inference", "models", "scoring", "scoring_functions"),
            description="Candidate answers per dialog from a model of the stack, rated by a scoring function, "
                        "kept by the filtering function",
        )
    )
