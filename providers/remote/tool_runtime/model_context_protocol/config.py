"""Config of ``remote::model-context-protocol`` (pydantic only: cheap to import)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class MCPConfig(BaseModel):
    """``config:`` of a ``remote::model-context-protocol`` provider; ``config: {}`` works.

    The servers themselves are named per tool group (``mcp_endpoint``), not here.
    """

    model_config = ConfigDict(extra="forbid")

    transport: Literal["auto", "sse", "streamable_http"] = Field(
        "auto",
        description="auto: SSE when the endpoint's path ends in /sse, else streamable HTTP; or force one transport "
        "for every endpoint",
    )
    connect_timeout: float = Field(10.0, gt=0, description="Seconds to connect to a server and initialize the session")
    call_timeout: float = Field(
        300.0, gt=0, description="Longest wait in seconds for a server's answer to one tools/list or tools/call"
    )
    headers: dict[str, str] = Field(
        default_factory=dict,
        description="HTTP headers sent to every MCP server (e.g. Authorization); per-request headers for one "
        "endpoint come in X-LlamaStack-Provider-Data as mcp_headers",
    )


class MCPProviderData(BaseModel):
    """X-LlamaStack-Provider-Data fields for remote::model-context-protocol."""

    mcp_headers: dict[str, dict[str, str]] | None = Field(
        None, description="Endpoint URL -> HTTP headers sent to that MCP server with this request"
    )
