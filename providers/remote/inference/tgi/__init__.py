"""remote::tgi, remote::hf::serverless, remote::hf::endpoint: Hugging Face's Text Generation
Inference and the Hugging Face Inference API / Inference Endpoints, through TGI's
OpenAI-compatible Messages API (``/v1/chat/completions``). Config keys are llama-stack 0.1.0's.
"""

from __future__ import annotations

import stack

from providers.utils.inference.hosted import hf_aliases, hosted_spec, secret_value

from .config import InferenceAPIImplConfig, InferenceEndpointImplConfig, TGIImplConfig

__all__ = ["InferenceAPIImplConfig", "InferenceEndpointImplConfig", "TGIImplConfig", "register_providers"]


def _api_url(cfg: TGIImplConfig) -> str:
    return cfg.url if cfg.url.endswith("/v1") else f"{cfg.url}/v1"


def _serverless_url(cfg: InferenceAPIImplConfig) -> str:
    return f"{cfg.api_url}/models/{cfg.huggingface_repo}/v1"


def _token(cfg) -> str | None:
    return secret_value(cfg.api_token)


def _serverless(**kwargs):
    from ._adapters import HFServerlessInference

    return HFServerlessInference(**kwargs)


def _endpoint(**kwargs):
    from ._adapters import HFEndpointInference

    return HFEndpointInference(**kwargs)


def _tgi(**kwargs):
    from ._adapters import TGIInference

    return TGIInference(**kwargs)


@stack.hookimpl
def register_providers(register):
    aliases = hf_aliases()
    register(hosted_spec(
        provider_type="remote::tgi", config=TGIImplConfig, base_url=_api_url, api_key=_token, aliases=aliases,
        impl=_tgi, description="A Text Generation Inference server (its OpenAI-compatible Messages API)",
    ))
    register(hosted_spec(
        provider_type="remote::hf::serverless", config=InferenceAPIImplConfig, base_url=_serverless_url,
        api_key=_token, aliases=aliases, impl=_serverless,
        description="One model of the Hugging Face serverless Inference API (OpenAI-compatible chat)",
    ))
    register(hosted_spec(
        provider_type="remote::hf::endpoint", config=InferenceEndpointImplConfig,
        base_url=lambda cfg: cfg.endpoints_api_url, api_key=_token, aliases=aliases, impl=_endpoint,
        description="A Hugging Face Inference Endpoint running TGI (OpenAI-compatible chat)",
    ))
