"""``inline::llm-as-judge``: a model the stack serves grades each row, from a
prompt template and regexes that read the grade out of its reply
(``llm-as-judge::base``, ``llm-as-judge::405b-simpleqa``)."""

from __future__ import annotations

import stack
from stack.registry import ProviderContext, ProviderSpec

from .config import LlmAsJudgeScoringConfig

__all__ = ["LlmAsJudgeScoringConfig", "create", "register_providers"]


async def create(config: LlmAsJudgeScoringConfig, context: ProviderContext):
    from .provider import LlmAsJudgeScoring

    return LlmAsJudgeScoring(config, inference=context.deps["inference"], models=context.deps.get("models"),
                             datasetio=context.deps.get("datasetio"), datasets=context.deps.get("datasets"))


@stack.hookimpl
def register_providers(register):
    register(
        ProviderSpec(
            api="scoring",
            provider_type="inline::llm-as-judge",
            config=LlmAsJudgeScoringConfig,
            factory=create,
            api_dependencies=("inference",),
            # models: refuse an unknown judge model before any row; datasetio and datasets: score_batch
            optional_api_dependencies=("models", "datasetio", "datasets"),
            description="An LLM served by the stack grades each row from a prompt template; regexes read the grade",
        )
    )
