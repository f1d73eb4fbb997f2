"""Config fields shared by the remote inference adapters (pydantic only: cheap to import)."""

from __future__ import annotations

import os
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, SecretStr, field_validator


class HTTPClientConfig(BaseModel):
    """How the adapter talks to its upstream: timeouts, retries, the connection pool, TLS."""

    model_config = ConfigDict(extra="forbid")

    connect_timeout: float = Field(10.0, gt=0, description="Seconds to open a connection to the upstream")
    read_timeout: float = Field(
        600.0, gt=0,
        description="Longest wait in seconds for the next bytes of an answer, including the wait for its "
        "first byte (a non-streamed generation must finish within it)",
    )
    max_retries: int = Field(
        2, ge=0, le=10,
        description="Retries after connect errors, 429 and 5xx answers; never once a response body is being read",
    )
    retry_backoff: float = Field(0.5, ge=0, description="First retry delay in seconds; doubles each retry, with jitter")
    retry_backoff_max: float = Field(8.0, ge=0, description="Cap on one retry delay in seconds")
    retry_after_max: float = Field(
        30.0, ge=0,
        description="Longest Retry-After (seconds) to honour; an upstream asking for longer is not retried",
    )
    max_connections: int = Field(100, ge=0, description="Size of the connection pool (0: unlimited)")
    keepalive_timeout: float = Field(15.0, gt=0, description="Seconds an idle pooled connection stays open")
    tls_verify: bool | str = Field(True, description="Verify the upstream's TLS certificate; or a CA bundle path")
    headers: dict[str, str] = Field(default_factory=dict, description="Extra HTTP headers sent with every request")


def secret(value: Any) -> SecretStr | None:
    """'' (an unset ${env.X:} reference) counts as no key."""
    if value is None or value == "":
        return None
    return value if isinstance(value, SecretStr) else SecretStr(str(value))


class OpenAICompatConfig(HTTPClientConfig):
    """Base of the configs of OpenAI-compatible upstreams."""

    url: str = Field(description="Base URL of the OpenAI-compatible API, including /v1")
    api_key: SecretStr | None = Field(
        None, description="API key sent as 'Authorization: Bearer'; a key in X-LlamaStack-Provider-Data wins"
    )

    @field_validator("api_key", mode="before")
    @classmethod
    def _empty_key_is_none(cls, value: Any) -> Any:
        return secret(value)

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        return http_url(value)


def http_url(value: str) -> str:
    """``value`` without a trailing slash; anything but an http(s) URL is an error."""
    if not value.startswith(("http://", "https://")):
        raise ValueError(f"must be an http:// or https:// URL, got {value!r}")
    return value.rstrip("/")


#: a key or token field: '' (an unset ${env.X:} reference) reads as no key
OptionalSecret = Annotated[SecretStr | None, BeforeValidator(secret)]
#: an http(s) URL, kept without its trailing slash
HttpURL = Annotated[str, AfterValidator(http_url)]


def env_key(name: str | None) -> str | None:
    return os.environ.get(name) or None if name else None


def preset_spec(*, provider_type: str, config: type[OpenAICompatConfig], provider_data: type[BaseModel],
                default_url: str, key_env: str | None, description: str):
    """The ProviderSpec of an OpenAI-compatible upstream with a default URL and key variable.

    The key comes from X-LlamaStack-Provider-Data (the one field of
    ``provider_data``), else from ``api_key``, else from the environment
    variable ``key_env`` -- the last only while ``url`` is the vendor's own, so
    a key never travels to another host.
    """
    from stack.registry import ProviderSpec

    (data_key,) = provider_data.model_fields

    async def create(cfg: OpenAICompatConfig, context: Any) -> Any:
        from providers.utils.http import HTTPSettings

        from .openai_compat import OpenAICompatInference

        key = cfg.api_key.get_secret_value() if cfg.api_key else None
        if key is None and cfg.url == default_url.rstrip("/"):
            key = env_key(key_env)
        impl = OpenAICompatInference(url=cfg.url, settings=HTTPSettings.from_config(cfg), context=context,
                                     api_key=key, provider_data_key=data_key)
        await impl.initialize()
        return impl

    return ProviderSpec(api="inference", provider_type=provider_type, config=config, factory=create,
                        provider_data_validator=provider_data, description=description)
