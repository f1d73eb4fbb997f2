"""remote::openai: any OpenAI-compatible API -- OpenAI, W&B Training, vLLM, a llama.cpp server..."""

from __future__ import annotations

from pydantic import BaseModel, Field

import stack

from providers.utils.inference.remote_config import OpenAICompatConfig, preset_spec

DEFAULT_URL = "https://api.openai.com/v1"


class OpenAIConfig(OpenAICompatConfig):
    url: str = Field(DEFAULT_URL, description="Base URL of the OpenAI-compatible API, including /v1")


class OpenAIProviderData(BaseModel):
    """X-LlamaStack-Provider-Data fields for remote::openai."""

    openai_api_key: str | None = None


@stack.hookimpl
def register_providers(register):
    register(preset_spec(
        provider_type="remote::openai", config=OpenAIConfig, provider_data=OpenAIProviderData,
        default_url=DEFAULT_URL, key_env="OPENAI_API_KEY",
        description="Any OpenAI-compatible API (OpenAI, vLLM, llama.cpp server, W&B Training...)",
    ))
