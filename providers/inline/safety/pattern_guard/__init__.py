"""``inline::pattern-guard``: deterministic shields — payment cards, secrets,
e-mail addresses, phone numbers and rules of your own (regexes or keywords)."""

from __future__ import annotations

import stack
from stack.registry import ProviderContext, ProviderSpec

from .config import DetectorSettings, DetectorsConfig, PatternGuardConfig, PatternRule

__all__ = ["DetectorSettings", "DetectorsConfig", "PatternGuardConfig", "PatternRule", "create", "register_providers"]


async def create(config: PatternGuardConfig, context: ProviderContext):
    from .provider import PatternGuardSafety

    return PatternGuardSafety(config, provider_id=context.provider_id, shields=context.deps.get("shields"))


@stack.hookimpl
def register_providers(register):
    register(
        ProviderSpec(
            api="safety",
            provider_type="inline::pattern-guard",
            config=PatternGuardConfig,
            factory=create,
            # the shields table, to learn shields another replica registered
            optional_api_dependencies=("shields",),
            description="Deterministic shields: payment cards, secrets, e-mail addresses, phone numbers, "
            "and regex or keyword rules",
        )
    )
