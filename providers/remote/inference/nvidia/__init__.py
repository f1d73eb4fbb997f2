"""remote::nvidia: NVIDIA NIM (hosted or self-hosted) through its OpenAI-compatible API.

The config keys are llama-stack 0.1.0's: ``url`` (the host), ``api_key``,
``timeout`` and ``append_api_version`` (add ``/v1`` to ``url``).
"""

from __future__ import annotations

from pydantic import Field, model_validator

import stack

from providers.utils.inference.hosted import hosted_spec, secret_value
from providers.utils.inference.model_aliases import AliasTable, ModelAlias
from providers.utils.inference.remote_config import HTTPClientConfig, HttpURL, OptionalSecret
from stack.errors import ConfigError

DEFAULT_URL = "https://integrate.api.nvidia.com"
#: NVIDIA's hosted API catalog needs a key; a self-hosted NIM usually does not
HOSTED_HOST = "integrate.api.nvidia.com"

#: NVIDIA's model names, as llama-stack 0.1.0's nvidia template registers them
NVIDIA_ALIASES = AliasTable([
    ModelAlias("meta-llama/Llama-3.1-8B-Instruct", ("meta/llama-3.1-8b-instruct",)),
    ModelAlias("meta-llama/Llama-3.1-70B-Instruct", ("meta/llama-3.1-70b-instruct",)),
    ModelAlias("meta-llama/Llama-3.1-405B-Instruct-FP8", ("meta/llama-3.1-405b-instruct",)),
    ModelAlias("meta-llama/Llama-3.2-1B-Instruct", ("meta/llama-3.2-1b-instruct",)),
    ModelAlias("meta-llama/Llama-3.2-3B-Instruct", ("meta/llama-3.2-3b-instruct",)),
    ModelAlias("meta-llama/Llama-3.2-11B-Vision-Instruct", ("meta/llama-3.2-11b-vision-instruct",)),
    ModelAlias("meta-llama/Llama-3.2-90B-Vision-Instruct", ("meta/llama-3.2-90b-vision-instruct",)),
    ModelAlias("meta-llama/Llama-3.3-70B-Instruct", ("meta/llama-3.3-70b-instruct",)),
])


class NVIDIAConfig(HTTPClientConfig):
    url: HttpURL = Field(DEFAULT_URL, description="URL of the NIM: NVIDIA's hosted catalog or your own deployment")
    api_key: OptionalSecret = Field(
        None, description="NVIDIA API key (required for the hosted catalog); NVIDIA_API_KEY when unset there"
    )
    timeout: int = Field(60, ge=1, description="Seconds to wait for an answer (sets read_timeout)")
    append_api_version: bool = Field(True, description="Add /v1 to url (set false when url already names the API version)")

    @model_validator(mode="after")
    def _timeout_is_the_read_timeout(self) -> "NVIDIAConfig":
        # 0.1.0's one timeout; an explicit read_timeout wins
        if "read_timeout" not in self.model_fields_set:
            self.read_timeout = float(self.timeout)
        return self


def _base_url(cfg: NVIDIAConfig) -> str:
    return f"{cfg.url}/v1" if cfg.append_api_version else cfg.url


def _check(cfg: NVIDIAConfig, key: str | None) -> None:
    if key is None and HOSTED_HOST in cfg.url:
        raise ConfigError(f"remote::nvidia: api_key is required for NVIDIA's hosted catalog ({cfg.url}); "
                          "set api_key or NVIDIA_API_KEY, or point url at your own NIM")


@stack.hookimpl
def register_providers(register):
    register(hosted_spec(
        provider_type="remote::nvidia", config=NVIDIAConfig,
        base_url=_base_url, api_key=lambda cfg: secret_value(cfg.api_key), check=_check,
        default_url=f"{DEFAULT_URL}/v1", key_env="NVIDIA_API_KEY", aliases=NVIDIA_ALIASES,
        description="NVIDIA NIM, hosted or self-hosted (OpenAI-compatible API)",
    ))
