"""remote::ollama: an Ollama server through its native API (/api/chat, /api/generate, /api/embed)."""

from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator

import stack
from stack.registry import ProviderSpec

from providers.utils.inference.remote_config import HTTPClientConfig, http_url

DEFAULT_URL = "http://localhost:11434"


class OllamaImplConfig(HTTPClientConfig):
    url: str = Field(DEFAULT_URL, description="Base URL of the Ollama server (without /api or /v1)")

    @field_validator("url")
    @classmethod
    def _base_url(cls, value: str) -> str:
        value = http_url(value)
        for suffix in ("/api", "/v1"):  # a URL copied from an OpenAI-style or API-path config
            if value.endswith(suffix):
                value = value[: -len(suffix)]
        return value


async def create(config: OllamaImplConfig, context: Any) -> Any:
    from ._adapter import OllamaInference

    impl = OllamaInference(config, context)
    await impl.initialize()
    return impl


@stack.hookimpl
def register_providers(register):
    register(ProviderSpec(
        api="inference", provider_type="remote::ollama", config=OllamaImplConfig, factory=create,
        description="An Ollama server (native API; models by their Ollama names)",
    ))
