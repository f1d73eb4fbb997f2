"""remote::fireworks: Fireworks AI through its OpenAI-compatible API."""

from __future__ import annotations

from pydantic import BaseModel, Field

import stack

from providers.utils.inference.remote_config import OpenAICompatConfig, preset_spec

DEFAULT_URL = "https://api.fireworks.ai/inference/v1"


class FireworksImplConfig(OpenAICompatConfig):
    url: str = Field(DEFAULT_URL, description="Base URL of the Fireworks AI API")


class FireworksProviderData(BaseModel):
    """X-LlamaStack-Provider-Data fields for remote::fireworks."""

    fireworks_api_key: str | None = None


@stack.hookimpl
def register_providers(register):
    register(preset_spec(
        provider_type="remote::fireworks", config=FireworksImplConfig, provider_data=FireworksProviderData,
        default_url=DEFAULT_URL, key_env="FIREWORKS_API_KEY", description="Fireworks AI (OpenAI-compatible API)",
    ))
