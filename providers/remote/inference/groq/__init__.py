"""remote::groq: Groq through its OpenAI-compatible API."""

from __future__ import annotations

from pydantic import BaseModel, Field

import stack

from providers.utils.inference.remote_config import OpenAICompatConfig, preset_spec

DEFAULT_URL = "https://api.groq.com/openai/v1"


class GroqImplConfig(OpenAICompatConfig):
    url: str = Field(DEFAULT_URL, description="Base URL of the Groq API")


class GroqProviderData(BaseModel):
    """X-LlamaStack-Provider-Data fields for remote::groq."""

    groq_api_key: str | None = None


@stack.hookimpl
def register_providers(register):
    register(preset_spec(
        provider_type="remote::groq", config=GroqImplConfig, provider_data=GroqProviderData,
        default_url=DEFAULT_URL, key_env="GROQ_API_KEY", description="Groq (OpenAI-compatible API)",
    ))
