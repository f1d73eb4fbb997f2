"""remote::together: Together AI through its OpenAI-compatible API."""

from __future__ import annotations

from pydantic import BaseModel, Field

import stack

from providers.utils.inference.remote_config import OpenAICompatConfig, preset_spec

DEFAULT_URL = "https://api.together.xyz/v1"


class TogetherImplConfig(OpenAICompatConfig):
    url: str = Field(DEFAULT_URL, description="Base URL of the Together AI API")


class TogetherProviderData(BaseModel):
    """X-LlamaStack-Provider-Data fields for remote::together."""

    together_api_key: str | None = None


@stack.hookimpl
def register_providers(register):
    register(preset_spec(
        provider_type="remote::together", config=TogetherImplConfig, provider_data=TogetherProviderData,
        default_url=DEFAULT_URL, key_env="TOGETHER_API_KEY", description="Together AI (OpenAI-compatible API)",
    ))
