"""``inline::meta-reference`` eval: generate with a model or agent candidate over
an eval task's rows, score with the scoring API, as jobs of the stack."""

from __future__ import annotations

import stack
from stack.registry import ProviderContext, ProviderSpec

from .config import MetaReferenceEvalConfig

__all__ = ["MetaReferenceEvalConfig", "create", "register_providers"]


async def create(config: MetaReferenceEvalConfig, context: ProviderContext):
    from .provider import MetaReferenceEval

    return MetaReferenceEval(config, context)


@stack.hookimpl
def register_providers(register):
    register(
        ProviderSpec(
            api="eval",
            provider_type="inline::meta-reference",
            config=MetaReferenceEvalConfig,
            factory=create,
            api_dependencies=("eval_tasks", "datasetio", "scoring", "inference", "models"),
            optional_api_dependencies=("agents",),
            description="Eval tasks run over their datasets with model or agent candidates, scored by the scoring API",
        )
    )
