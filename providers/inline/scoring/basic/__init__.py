"""``inline::basic``: scoring functions that compare answers without a model —
``basic::equality``, ``basic::subset_of`` and
``basic::regex_parser_multiple_choice_answer``."""

from __future__ import annotations

import stack
from stack.registry import ProviderContext, ProviderSpec

from .config import BasicScoringConfig

__all__ = ["BasicScoringConfig", "create", "register_providers"]


async def create(config: BasicScoringConfig, context: ProviderContext):
    from .provider import BasicScoring

    return BasicScoring(datasetio=context.deps.get("datasetio"), datasets=context.deps.get("datasets"))


@stack.hookimpl
def register_providers(register):
    register(
        ProviderSpec(
            api="scoring",
            provider_type="inline::basic",
            config=BasicScoringConfig,
            factory=create,
            # score_batch reads rows through datasetio and saves results as a dataset
            optional_api_dependencies=("datasetio", "datasets"),
            description="Exact match, substring and multiple-choice answer parsing; accuracy, average, median, counts",
        )
    )
