"""remote::vllm: a vLLM server through its OpenAI-compatible API (llama-stack's config keys)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field, SecretStr, field_validator

import stack
from stack.registry import ProviderSpec

from providers.utils.inference.remote_config import HTTPClientConfig, http_url, secret


class VLLMInferenceAdapterConfig(HTTPClientConfig):
    url: str = Field(description="Base URL of the vLLM server's OpenAI-compatible API, e.g. http://localhost:8000/v1")
    max_tokens: int = Field(4096, ge=1, description="max_tokens sent when a request sets none")
    api_token: SecretStr | None = Field(
        SecretStr("fake"), description="The vLLM server's --api-key; a vllm_api_token in X-LlamaStack-Provider-Data wins"
    )

    @field_validator("api_token", mode="before")
    @classmethod
    def _empty_token_is_none(cls, value: Any) -> Any:
        return secret(value)

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        return http_url(value)


class VLLMProviderData(BaseModel):
    """X-LlamaStack-Provider-Data fields for remote::vllm."""

    vllm_api_token: str | None = None


async def create(config: VLLMInferenceAdapterConfig, context: Any) -> Any:
    from providers.utils.http import HTTPSettings

    from providers.utils.inference.openai_compat import OpenAICompatInference

    impl = OpenAICompatInference(
        url=config.url, settings=HTTPSettings.from_config(config), context=context,
        api_key=config.api_token.get_secret_value() if config.api_token else None,
        provider_data_key="vllm_api_token", default_max_tokens=config.max_tokens,
    )
    await impl.initialize()
    return impl


@stack.hookimpl
def register_providers(register):
    register(ProviderSpec(
        api="inference", provider_type="remote::vllm", config=VLLMInferenceAdapterConfig, factory=create,
        provider_data_validator=VLLMProviderData,
        description="A vLLM server (OpenAI-compatible API; vLLM's sampling extras pass through)",
    ))
