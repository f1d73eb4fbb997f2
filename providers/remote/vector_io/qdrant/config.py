"""``config:`` of ``remote::qdrant``: a Qdrant server (keys as llama-stack 0.1.x's QdrantConfig)."""

from __future__ import annotations

from pydantic import Field

from providers.utils.vector_io.qdrant_config import QdrantCommonConfig


class QdrantRemoteConfig(QdrantCommonConfig):
    location: str | None = Field(None, description="':memory:' or a URL (qdrant-client's location)")
    url: str | None = Field(None, description="Server URL, e.g. http://localhost:6333")
    host: str | None = Field(None, description="Server host, when url is unset")
    port: int | None = Field(6333, ge=1, le=65535, description="REST port")
    grpc_port: int = Field(6334, ge=1, le=65535, description="gRPC port")
    prefer_grpc: bool = Field(False, description="Use gRPC instead of REST")
    https: bool | None = Field(None, description="Use TLS")
    api_key: str | None = Field(None, repr=False, description="API key of a Qdrant Cloud cluster")
    prefix: str | None = Field(None, description="URL path prefix of the REST API")
    timeout: int | None = Field(None, ge=1, description="Request timeout in seconds")
