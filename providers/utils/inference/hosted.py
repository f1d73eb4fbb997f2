"""Hosted OpenAI-compatible services whose configs follow llama-stack 0.1.0's field names.

TGI, Hugging Face, SambaNova, NVIDIA NIM and Cerebras all speak the OpenAI
chat API, but each 0.1.0 config names its URL and key its own way
(``url``/``base_url``, ``api_key``/``api_token``) and each service names the
Llama models its own way. ``hosted_spec`` builds the ProviderSpec from two
small functions (the base URL and the key of a config) and an alias table;
``AliasedInference`` maps Llama ids to the service's names at registration.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import BaseModel

from stack.apis.models import Model
from stack.errors import BadRequestError

from .model_aliases import AliasTable, naming_field
from .openai_compat import OpenAICompatInference
from .remote_config import env_key


class AliasedInference(OpenAICompatInference):
    """An OpenAI-compatible upstream that knows the service's names of the Llama models.

    ``served_model`` (from ``serves(config)``): the one model the upstream
    serves (an HF serverless repo), so registering any other is an error
    instead of a silently wrong answer.
    """

    def __init__(self, *, aliases: AliasTable | None = None, config: Any = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.aliases = aliases
        self.config = config
        self.served_model = self.serves(config)

    def serves(self, config: Any) -> str | None:
        return None

    async def register_model(self, model: Model) -> Model:
        alias = self.aliases.get(model.provider_resource_id) if self.aliases is not None else None
        if alias is not None:
            model = model.model_copy(update={"provider_resource_id": alias.preferred})
        if self.served_model is not None and model.provider_resource_id != self.served_model:
            raise BadRequestError(
                f"{self.provider_type} provider {self.context.provider_id!r} serves only {self.served_model!r}, "
                f"not {model.provider_resource_id!r}", field=naming_field(model))
        return model


def hf_aliases() -> AliasTable:
    """Every Llama model under its own Hugging Face repo id (what TGI and HF serve)."""
    from .model_aliases import LLAMA_MODELS, ModelAlias

    return AliasTable(ModelAlias(repo, (repo,)) for repo in LLAMA_MODELS)


def hosted_spec(*, provider_type: str, config: type[BaseModel], description: str,
                base_url: Callable[[Any], str], api_key: Callable[[Any], str | None],
                provider_data: type[BaseModel] | None = None, aliases: AliasTable | None = None,
                default_url: str | None = None, key_env: str | None = None,
                impl: Callable[..., OpenAICompatInference] = AliasedInference,
                check: Callable[[Any, str | None], None] | None = None):
    """The ProviderSpec of a hosted OpenAI-compatible service.

    The key comes from X-LlamaStack-Provider-Data (the one field of
    ``provider_data``, when the service takes one), else from the config, else
    from ``key_env`` -- the last only while the URL is ``default_url``, so a
    key never travels to another host. ``check(config, key)`` refuses a config
    at start-up (say, a hosted URL without a key).
    """
    from stack.registry import ProviderSpec

    data_key = next(iter(provider_data.model_fields)) if provider_data is not None else None

    async def create(cfg: Any, context: Any) -> Any:
        from providers.utils.http import HTTPSettings

        url = base_url(cfg)
        key = api_key(cfg)
        if key is None and default_url is not None and url == default_url:
            key = env_key(key_env)
        if check is not None:
            check(cfg, key)
        instance = impl(url=url, settings=HTTPSettings.from_config(cfg), context=context, api_key=key,
                        provider_data_key=data_key, aliases=aliases, config=cfg)
        await instance.initialize()
        return instance

    return ProviderSpec(api="inference", provider_type=provider_type, config=config, factory=create,
                        provider_data_validator=provider_data, description=description)


def secret_value(value: Any) -> str | None:
    """The text of a SecretStr config field, or None."""
    return value.get_secret_value() if value is not None else None
