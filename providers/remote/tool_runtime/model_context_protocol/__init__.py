"""``remote::model-context-protocol``: the tools of MCP servers (streamable HTTP or SSE),
one server per tool group (its ``mcp_endpoint``). Needs ``pip install 'polystack[mcp]'``."""

from __future__ import annotations

import stack
from stack.errors import ConfigError
from stack.apis.tool_runtime import ToolRuntime
from stack.registry import ProviderContext, ProviderSpec

from .config import MCPConfig, MCPProviderData

__all__ = ["MCPConfig", "MCPProviderData", "create", "register_providers"]


async def create(config: MCPConfig, context: ProviderContext):
    try:
        import mcp  # noqa: F401
    except ModuleNotFoundError:
        raise ConfigError(
            "remote::model-context-protocol needs the MCP SDK: pip install 'polystack[mcp]' (or 'mcp>=1.10,<2')"
        ) from None
    from .provider import MCPToolRuntime

    return MCPToolRuntime(config, context)


@stack.hookimpl
def register_providers(register):
    register(
        ProviderSpec(
            api="tool_runtime",
            serves=ToolRuntime,  # no rag-tool routes
            provider_type="remote::model-context-protocol",
            config=MCPConfig,
            factory=create,
            provider_data_validator=MCPProviderData,
            description="Tools of Model Context Protocol servers (streamable HTTP and SSE), one per tool group",
        )
    )
