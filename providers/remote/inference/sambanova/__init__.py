"""remote::sambanova: SambaNova Cloud through its OpenAI-compatible API (llama-stack 0.1.0's config keys)."""

from __future__ import annotations

from pydantic import BaseModel, Field

import stack

from providers.utils.inference.hosted import hosted_spec, secret_value
from providers.utils.inference.model_aliases import AliasTable, ModelAlias
from providers.utils.inference.remote_config import OpenAICompatConfig

DEFAULT_URL = "https://api.sambanova.ai/v1"

#: SambaNova's model names, as llama-stack 0.1.0's sambanova template registers them
SAMBANOVA_ALIASES = AliasTable([
    ModelAlias("meta-llama/Llama-3.1-8B-Instruct", ("Meta-Llama-3.1-8B-Instruct",)),
    ModelAlias("meta-llama/Llama-3.1-70B-Instruct", ("Meta-Llama-3.1-70B-Instruct",)),
    ModelAlias("meta-llama/Llama-3.1-405B-Instruct-FP8", ("Meta-Llama-3.1-405B-Instruct",)),
    ModelAlias("meta-llama/Llama-3.2-1B-Instruct", ("Meta-Llama-3.2-1B-Instruct",)),
    ModelAlias("meta-llama/Llama-3.2-3B-Instruct", ("Meta-Llama-3.2-3B-Instruct",)),
    ModelAlias("meta-llama/Llama-3.3-70B-Instruct", ("Meta-Llama-3.3-70B-Instruct",)),
    ModelAlias("meta-llama/Llama-3.2-11B-Vision-Instruct", ("Llama-3.2-11B-Vision-Instruct",)),
    ModelAlias("meta-llama/Llama-3.2-90B-Vision-Instruct", ("Llama-3.2-90B-Vision-Instruct",)),
    ModelAlias("meta-llama/Llama-Guard-3-8B", ("Meta-Llama-Guard-3-8B",)),
])


class SambaNovaImplConfig(OpenAICompatConfig):
    url: str = Field(DEFAULT_URL, description="Base URL of the SambaNova Cloud API, including /v1")


class SambaNovaProviderData(BaseModel):
    """X-LlamaStack-Provider-Data fields for remote::sambanova."""

    sambanova_api_key: str | None = None


@stack.hookimpl
def register_providers(register):
    register(hosted_spec(
        provider_type="remote::sambanova", config=SambaNovaImplConfig, provider_data=SambaNovaProviderData,
        base_url=lambda cfg: cfg.url, api_key=lambda cfg: secret_value(cfg.api_key),
        default_url=DEFAULT_URL, key_env="SAMBANOVA_API_KEY", aliases=SAMBANOVA_ALIASES,
        description="SambaNova Cloud (OpenAI-compatible API)",
    ))
