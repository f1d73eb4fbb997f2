"""Hosted OpenAI-compatible services whose configs follow llama-stack 0.1.0's field names.

TGI, Hugging Face, SambaNova, NVIDIA NIM and Cerebras all speak the OpenAI
chat API, but each 0.1.0 config names its URL and key its own way
(``url``/``base_url``, ``api_key``/``api_token``) and each service names the
Llama models its own way. ``hosted_spec`` builds the ProviderSpec from two
small functions (the base URL and the key of a config) and an alias table;
``AliasedInference`` (in ``aliased.py``) maps Llama ids to the service's names
at registration.

Only names are imported here: every hosted provider's registration imports
this module at start-up, and the HTTP client (aiohttp) loads with the first
provider that is configured (``create``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import BaseModel

from .model_aliases import AliasTable
from .remote_config import env_key


def hf_aliases() -> AliasTable:
    """Every Llama model under its own Hugging Face repo id (what TGI and HF serve)."""
    from .model_aliases import LLAMA_MODELS, ModelAlias

    return AliasTable(ModelAlias(repo, (repo,)) for repo in LLAMA_MODELS)


def hosted_spec(*, provider_type: str, config: type[BaseModel], description: str,
                base_url: Callable[[Any], str], api_key: Callable[[Any], str | None],
                provider_data: type[BaseModel] | None = None, aliases: AliasTable | None = None,
                default_url: str | None = None, key_env: str | None = None,
                impl: Callable[..., Any] | None = None,
                check: Callable[[Any, str | None], None] | None = None):
    """The ProviderSpec of a hosted OpenAI-compatible service.

    The key comes from X-LlamaStack-Provider-Data (the one field of
    ``provider_data``, when the service takes one), else from the config, else
    from ``key_env`` -- the last only while the URL is ``default_url``, so a
    key never travels to another host. ``check(config, key)`` refuses a config
    at start-up (say, a hosted URL without a key). ``impl``: the class (or
    factory) of the provider, ``AliasedInference`` by default.
    """
    from stack.registry import ProviderSpec

    data_key = next(iter(provider_data.model_fields)) if provider_data is not None else None

    async def create(cfg: Any, context: Any) -> Any:
        from providers.utils.http import HTTPSettings

        from .aliased import AliasedInference

        url = base_url(cfg)
        key = api_key(cfg)
        if key is None and default_url is not None and url == default_url:
            key = env_key(key_env)
        if check is not None:
            check(cfg, key)
        instance = (impl or AliasedInference)(url=url, settings=HTTPSettings.from_config(cfg), context=context, api_key=key,
                        provider_data_key=data_key, aliases=aliases, config=cfg)
        await instance.initialize()
        return instance

    return ProviderSpec(api="inference", provider_type=provider_type, config=config, factory=create,
                        provider_data_validator=provider_data, description=description)


def secret_value(value: Any) -> str | None:
    """The text of a SecretStr config field, or None."""
    return value.get_secret_value() if value is not None else None
