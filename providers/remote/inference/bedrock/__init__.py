"""remote::bedrock inference: models on Amazon Bedrock through boto3 (llama-stack 0.1.0's
``BedrockConfig``; the Llama 3.1 aliases its bedrock template registers)."""

from __future__ import annotations

from typing import Any

import stack
from providers.utils.bedrock.config import BedrockConfig, BedrockProviderData
from providers.utils.inference.model_aliases import AliasTable, ModelAlias
from stack.registry import ProviderSpec

__all__ = ["ALIASES", "BedrockConfig", "register_providers"]

#: llama-stack 0.1.0's bedrock aliases: Llama ids -> Bedrock model ids
ALIASES = AliasTable([
    ModelAlias("meta-llama/Llama-3.1-8B-Instruct", ("meta.llama3-1-8b-instruct-v1:0",)),
    ModelAlias("meta-llama/Llama-3.1-70B-Instruct", ("meta.llama3-1-70b-instruct-v1:0",)),
    ModelAlias("meta-llama/Llama-3.1-405B-Instruct-FP8", ("meta.llama3-1-405b-instruct-v1:0",)),
])


async def create(config: BedrockConfig, context: Any) -> Any:
    from providers.utils.bedrock.client import BedrockClients

    from ._adapter import BedrockInference

    impl = BedrockInference(BedrockClients(config, provider_data=context.provider_data), ALIASES)
    await impl.initialize()
    return impl


@stack.hookimpl
def register_providers(register):
    register(ProviderSpec(
        api="inference", provider_type="remote::bedrock", config=BedrockConfig, factory=create,
        provider_data_validator=BedrockProviderData,
        description="Amazon Bedrock through boto3 (Converse for chat; Llama and Titan bodies of InvokeModel)",
    ))
