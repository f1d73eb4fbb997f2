"""remote::cerebras: Cerebras Inference through its OpenAI-compatible API (llama-stack 0.1.0's config keys)."""

from __future__ import annotations

from pydantic import Field

import stack

from providers.utils.inference.hosted import hosted_spec, secret_value
from providers.utils.inference.model_aliases import AliasTable, ModelAlias
from providers.utils.inference.remote_config import HTTPClientConfig, HttpURL, OptionalSecret

DEFAULT_BASE_URL = "https://api.cerebras.ai"

#: Cerebras's model names, as llama-stack 0.1.0's cerebras template registers them
CEREBRAS_ALIASES = AliasTable([
    ModelAlias("meta-llama/Llama-3.1-8B-Instruct", ("llama3.1-8b",)),
    ModelAlias("meta-llama/Llama-3.3-70B-Instruct", ("llama-3.3-70b",)),
])


class CerebrasImplConfig(HTTPClientConfig):
    base_url: HttpURL = Field(DEFAULT_BASE_URL, description="Base URL of the Cerebras API, without /v1")
    api_key: OptionalSecret = Field(
        None, description="Cerebras API key; CEREBRAS_API_KEY when unset and base_url is Cerebras's own"
    )



def _base_url(cfg: CerebrasImplConfig) -> str:
    # 0.1.0's base_url is the host; the OpenAI-compatible API lives under /v1
    return cfg.base_url if cfg.base_url.endswith("/v1") else f"{cfg.base_url}/v1"


@stack.hookimpl
def register_providers(register):
    register(hosted_spec(
        provider_type="remote::cerebras", config=CerebrasImplConfig,
        base_url=_base_url, api_key=lambda cfg: secret_value(cfg.api_key),
        default_url=f"{DEFAULT_BASE_URL}/v1", key_env="CEREBRAS_API_KEY", aliases=CEREBRAS_ALIASES,
        description="Cerebras Inference (OpenAI-compatible API)",
    ))
