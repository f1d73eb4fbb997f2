"""``inline::braintrust``: the scorers of Braintrust's ``autoevals`` package
(``braintrust::factuality``, ``braintrust::answer-correctness``, ...). Their
LLM calls go to an OpenAI-compatible endpoint: this server's own by default,
so they run offline on the embedded model."""

from __future__ import annotations

import os

import stack
from stack.errors import ConfigError
from stack.registry import ProviderContext, ProviderSpec

from .config import BraintrustScoringConfig

__all__ = ["BraintrustScoringConfig", "create", "register_providers"]


def openai_base_url(config: BraintrustScoringConfig, provider_id: str) -> str:
    """The endpoint the scorers call: the config's, else this server's (``polystack run`` sets POLYSTACK_PORT)."""
    if config.openai_base_url:
        return config.openai_base_url.rstrip("/")
    port = os.environ.get("POLYSTACK_PORT", "").strip()
    if not port:
        raise ConfigError(
            f"scoring provider {provider_id!r} (inline::braintrust): the server's port is unknown here; "
            "set openai_base_url in its config (e.g. http://127.0.0.1:8321/v1)"
        )
    return f"http://127.0.0.1:{port}/v1"


async def create(config: BraintrustScoringConfig, context: ProviderContext):
    try:
        from .provider import BraintrustScoring
    except ImportError as exc:
        raise ConfigError(f"inline::braintrust needs the autoevals package ({exc}); "
                          "pip install 'polystack[scoring]'") from None

    return BraintrustScoring(config, openai_base_url(config, context.provider_id),
                             datasetio=context.deps.get("datasetio"), datasets=context.deps.get("datasets"))


@stack.hookimpl
def register_providers(register):
    register(
        ProviderSpec(
            api="scoring",
            provider_type="inline::braintrust",
            config=BraintrustScoringConfig,
            factory=create,
            optional_api_dependencies=("datasetio", "datasets"),
            description="Braintrust autoevals scorers (factuality, answer correctness, RAGAS) on an OpenAI-compatible endpoint",
        )
    )
