"""remote::bedrock safety: Amazon Bedrock Guardrails (ApplyGuardrail) as shields; a shield's
provider_resource_id is the guardrail id, ``params.guardrailVersion`` its version."""

from __future__ import annotations

from typing import Any

import stack
from providers.utils.bedrock.config import BedrockConfig, BedrockProviderData
from stack.registry import ProviderSpec

__all__ = ["BedrockConfig", "register_providers"]


async def create(config: BedrockConfig, context: Any) -> Any:
    from providers.utils.bedrock.client import BedrockClients

    from .provider import BedrockGuardrails

    impl = BedrockGuardrails(BedrockClients(config, provider_data=context.provider_data))
    await impl.clients.initialize()
    return impl


@stack.hookimpl
def register_providers(register):
    register(ProviderSpec(
        api="safety", provider_type="remote::bedrock", config=BedrockConfig, factory=create,
        provider_data_validator=BedrockProviderData,
        description="Amazon Bedrock Guardrails (ApplyGuardrail) as shields",
    ))
