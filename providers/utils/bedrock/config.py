"""Config of remote::bedrock (inference and safety): llama-stack 0.1.0's ``BedrockConfig`` keys,
plus ``endpoint_url`` (a VPC endpoint, a proxy or a test double). Pydantic only: cheap to import."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from providers.utils.inference.remote_config import OptionalSecret, http_url

RetryMode = Literal["legacy", "standard", "adaptive"]


class BedrockConfig(BaseModel):
    """Unset keys fall back to boto3's own lookup (environment, ~/.aws, instance role), as in 0.1.0."""

    model_config = ConfigDict(extra="forbid")

    aws_access_key_id: str | None = Field(None, description="AWS access key id; else AWS_ACCESS_KEY_ID and boto3's chain")
    aws_secret_access_key: OptionalSecret = Field(
        None, description="AWS secret access key; else AWS_SECRET_ACCESS_KEY and boto3's chain")
    aws_session_token: OptionalSecret = Field(None, description="AWS session token of temporary credentials")
    region_name: str | None = Field(None, description="AWS region, e.g. us-west-2; else AWS_DEFAULT_REGION")
    profile_name: str | None = Field(None, description="A profile of ~/.aws/config; else AWS_PROFILE")
    total_max_attempts: int | None = Field(
        None, ge=1, description="Attempts per request, the first included (boto3's retries); else AWS_MAX_ATTEMPTS")
    retry_mode: RetryMode | None = Field(None, description="boto3's retry mode; else AWS_RETRY_MODE")
    connect_timeout: float | None = Field(60, gt=0, description="Seconds to open a connection")
    read_timeout: float | None = Field(60, gt=0, description="Seconds to wait for the next bytes of an answer")
    session_ttl: int | None = Field(
        3600, gt=0, description="Seconds a boto3 session (and the credentials it resolved) is kept before a new one")
    endpoint_url: str | None = Field(
        None, description="polystack: the bedrock-runtime URL to call instead of AWS's regional one")

    @field_validator("aws_access_key_id", "region_name",
                     "profile_name", "retry_mode", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: Any) -> Any:
        return None if value == "" else value  # an unset ${env.X:} reference

    @field_validator("endpoint_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        return http_url(value) if value else None


class BedrockProviderData(BaseModel):
    """Per-request AWS credentials in X-LlamaStack-Provider-Data (a polystack addition; 0.1.0 had none)."""

    aws_access_key_id: str | None = None
    aws_secret_access_key: str | None = None
    aws_session_token: str | None = None
