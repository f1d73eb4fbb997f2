"""Configs of remote::tgi and the Hugging Face adapters: llama-stack 0.1.0's fields, plus the
HTTP client's and the Hugging Face API addresses (so tests and proxies can move them)."""

from __future__ import annotations

from pydantic import Field, field_validator

from providers.utils.inference.remote_config import HTTPClientConfig, HttpURL, OptionalSecret

HF_INFERENCE_API = "https://api-inference.huggingface.co"
HF_ENDPOINTS_API = "https://api.endpoints.huggingface.cloud"
HF_HUB = "https://huggingface.co"


class _TokenConfig(HTTPClientConfig):
    api_token: OptionalSecret = Field(None, description="Bearer token sent as 'Authorization: Bearer'")


class TGIImplConfig(_TokenConfig):
    url: HttpURL = Field(description="URL of the TGI server, e.g. http://localhost:8080 (/v1 is added)")


class InferenceAPIImplConfig(_TokenConfig):
    huggingface_repo: str = Field(
        min_length=1, description="The model's repo id on the Hugging Face Hub, e.g. meta-llama/Llama-3.2-3B-Instruct"
    )
    api_url: HttpURL = Field(HF_INFERENCE_API, description="Base URL of the Hugging Face serverless Inference API")


class InferenceEndpointImplConfig(_TokenConfig):
    endpoint_name: str = Field(
        min_length=1,
        description="The Inference Endpoint as '{namespace}/{endpoint_name}', or '{endpoint_name}' "
        "in the namespace of api_token's user",
    )
    endpoints_api_url: HttpURL = Field(HF_ENDPOINTS_API, description="Base URL of the Inference Endpoints API")
    hub_url: HttpURL = Field(HF_HUB, description="Base URL of the Hugging Face Hub (asked for the token's user name)")

    @field_validator("endpoint_name")
    @classmethod
    def _one_slash_at_most(cls, value: str) -> str:
        parts = value.split("/")
        if len(parts) > 2 or not all(parts):
            raise ValueError(f"must be 'namespace/endpoint_name' or 'endpoint_name', got {value!r}")
        return value
