"""The ``remote::model-context-protocol`` tool runtime: list and call the tools of MCP servers.

Each call opens a session of its own (connect, initialize, one request, close):
no state is held between requests, so any replica can serve any call.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from datetime import timedelta
from typing import Any, TypeVar
from urllib.parse import urlsplit

import httpx
from mcp import ClientSession, types
from mcp.client.sse import sse_client

try:
    from mcp.client.streamable_http import streamable_http_client
except ImportError:  # mcp < 1.24: only the older helper, which newer versions deprecate
    from mcp.client.streamable_http import streamablehttp_client as _old_streamable_http_client

    streamable_http_client = None
from mcp.shared.exceptions import McpError

from stack.apis._content import URL, ImageContentItem, TextContentItem
from stack.apis.tool_groups import ToolDef, ToolGroup, ToolParameter
from stack.apis.tool_runtime import ToolInvocationResult
from stack.errors import (
    BadRequestError,
    NotFoundError,
    StackError,
    UpstreamError,
    UpstreamTimeoutError,
)
from stack.registry import ProviderContext

from .config import MCPConfig

log = logging.getLogger(__name__)

T = TypeVar("T")


def endpoint_uri(endpoint: Any) -> str:
    """The URL string of an ``mcp_endpoint`` (a URL model, a ``{"uri": ...}`` dict or a string)."""
    if isinstance(endpoint, URL):
        uri = endpoint.uri
    elif isinstance(endpoint, dict) and isinstance(endpoint.get("uri"), str):
        uri = endpoint["uri"]
    elif isinstance(endpoint, str):
        uri = endpoint
    else:
        raise BadRequestError("must be a URL like {'uri': 'http://host:port/mcp'}", field="mcp_endpoint")
    if urlsplit(uri).scheme not in ("http", "https"):
        raise BadRequestError(f"must be an http:// or https:// URL, got {uri!r}", field="mcp_endpoint")
    return uri


def _parameter_type(schema: dict[str, Any]) -> str:
    """The JSON-schema type of one property; for ``anyOf``/``oneOf`` (Optional[...]) the first non-null one."""
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), None)
    if kind is None:
        for option in schema.get("anyOf") or schema.get("oneOf") or ():
            if isinstance(option, dict) and option.get("type") not in (None, "null"):
                return _parameter_type(option)
    return kind if isinstance(kind, str) else "object"


def tool_def(tool: types.Tool, uri: str) -> ToolDef:
    """A ToolDef from an MCP tool: one parameter per property of its input schema."""
    schema = tool.inputSchema or {}
    required = set(schema.get("required") or ())
    parameters = [
        ToolParameter(
            name=name,
            parameter_type=_parameter_type(prop),
            description=prop.get("description") or prop.get("title") or "",
            required=name in required,
            default=prop.get("default"),
        )
        for name, prop in (schema.get("properties") or {}).items()
        if isinstance(prop, dict)
    ]
    return ToolDef(name=tool.name, description=tool.description, parameters=parameters,
                   metadata={"endpoint": uri, "input_schema": schema})


def _content_items(result: types.CallToolResult) -> list[TextContentItem | ImageContentItem]:
    items: list[TextContentItem | ImageContentItem] = []
    for block in result.content:
        if isinstance(block, types.TextContent):
            items.append(TextContentItem(text=block.text))
        elif isinstance(block, types.ImageContent):
            items.append(ImageContentItem(image={"data": block.data}))
        elif isinstance(block, types.EmbeddedResource) and isinstance(block.resource, types.TextResourceContents):
            items.append(TextContentItem(text=block.resource.text))
        else:  # audio, binary resources, resource links: say what came, do not drop it silently
            items.append(TextContentItem(text=json.dumps(block.model_dump(mode="json", exclude_none=True))))
    if not items and result.structuredContent is not None:
        items.append(TextContentItem(text=json.dumps(result.structuredContent)))
    return items


def _leaves(exc: BaseException) -> list[BaseException]:
    """The exceptions inside (nested) exception groups, which anyio task groups raise."""
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for inner in exc.exceptions for leaf in _leaves(inner)]
    return [exc]


class MCPToolRuntime:
    """Tools of the MCP servers named by tool groups' ``mcp_endpoint``."""

    def __init__(self, config: MCPConfig, context: ProviderContext) -> None:
        self.config = config
        self.context = context
        self._tool_endpoints: dict[str, str] = {}  # tool name -> endpoint, filled by listing
        self._group_endpoints: dict[str, str] = {}  # tool group id -> endpoint
        self._listed: set[str] = set()  # endpoints whose tools are in _tool_endpoints

    # -- registry hooks: the routing table tells us of groups registered before a restart

    async def register_tool_group(self, group: ToolGroup) -> None:
        if group.mcp_endpoint is None:
            raise BadRequestError("remote::model-context-protocol needs the tool group's MCP server URL",
                                  field="mcp_endpoint")
        self._group_endpoints[group.identifier] = endpoint_uri(group.mcp_endpoint)

    async def unregister_tool_group(self, group: ToolGroup) -> None:
        uri = self._group_endpoints.pop(group.identifier, None)
        if uri is not None and uri not in self._group_endpoints.values():
            self._listed.discard(uri)
            self._tool_endpoints = {t: u for t, u in self._tool_endpoints.items() if u != uri}

    # -- ToolRuntime

    async def list_runtime_tools(self, tool_group_id: str | None = None, mcp_endpoint: Any = None) -> list[ToolDef]:
        if mcp_endpoint is None:
            raise BadRequestError("remote::model-context-protocol needs the tool group's MCP server URL",
                                  field="mcp_endpoint")
        uri = endpoint_uri(mcp_endpoint)
        defs = await self._list(uri)
        if tool_group_id is not None:
            self._group_endpoints[tool_group_id] = uri
        return defs

    async def invoke_tool(self, tool_name: str, kwargs: dict[str, Any]) -> ToolInvocationResult:
        uri = self._tool_endpoints.get(tool_name)
        if uri is None:
            await self._relist()
            uri = self._tool_endpoints.get(tool_name)
        if uri is None:
            raise NotFoundError("MCP tool", tool_name, self._tool_endpoints)

        async def call(session: ClientSession) -> types.CallToolResult:
            return await session.call_tool(tool_name, kwargs)

        result = await self._with_session(uri, call, f"calling tool {tool_name!r}")
        items = _content_items(result)
        if result.isError:
            text = " ".join(i.text for i in items if isinstance(i, TextContentItem)) or "the tool reported an error"
            return ToolInvocationResult(content=items, error_message=text, error_code=1)
        return ToolInvocationResult(content=items)



    # -- internals

    async def _list(self, uri: str) -> list[ToolDef]:
        async def list_all(session: ClientSession) -> list[types.Tool]:
            tools, cursor = [], None
            while True:
                page = await session.list_tools(cursor)
                tools += page.tools
                cursor = page.nextCursor
                if not cursor:
                    return tools

        tools = await self._with_session(uri, list_all, "listing tools")
        for name in [t for t, u in self._tool_endpoints.items() if u == uri]:
            del self._tool_endpoints[name]
        self._tool_endpoints.update({t.name: uri for t in tools})
        self._listed.add(uri)
        return [tool_def(t, uri) for t in tools]

    async def _relist(self) -> None:
        """List the endpoints of groups we heard of but never listed (registered before a restart)."""
        for uri in set(self._group_endpoints.values()) - self._listed:
            try:
                await self._list(uri)
            except StackError as exc:
                log.warning("MCP server %s: cannot list its tools: %s", uri, exc)

    def _headers(self, uri: str) -> dict[str, str]:
        headers = dict(self.config.headers)
        data = self.context.provider_data() if self.context is not None else None
        if data is not None and data.mcp_headers:
            headers.update(data.mcp_headers.get(uri, {}))
        return headers

    def _transport(self, uri: str) -> str:
        if self.config.transport != "auto":
            return self.config.transport
        return "sse" if urlsplit(uri).path.rstrip("/").endswith("/sse") else "streamable_http"

    async def _with_session(self, uri: str, op: Callable[[ClientSession], Awaitable[T]], doing: str) -> T:
        """``op`` on a fresh, initialized session with the server at ``uri``; failures become stack errors.

        The endpoint is a URL a client names (tool group registration), so it
        must pass the stack's fetch rules first (``server.fetch``: loopback and
        private addresses only when allowed), checked again for every session."""
        await self.context.fetcher.checked_addresses(uri, field="mcp_endpoint")
        transport = self._transport(uri)
        where = f"MCP server {uri} ({transport.replace('_', ' ')})"
        cfg = self.config
        try:
            async with asyncio.timeout(cfg.connect_timeout + cfg.call_timeout):
                async with AsyncExitStack() as stack:
                    if transport == "sse":
                        read, write = await stack.enter_async_context(sse_client(
                            uri, headers=self._headers(uri), timeout=cfg.connect_timeout,
                            sse_read_timeout=cfg.call_timeout))
                    elif streamable_http_client is not None:
                        client = await stack.enter_async_context(httpx.AsyncClient(
                            headers=self._headers(uri), timeout=httpx.Timeout(cfg.connect_timeout, read=cfg.call_timeout)))
                        read, write, _ = await stack.enter_async_context(streamable_http_client(uri, http_client=client))
                    else:
                        read, write, _ = await stack.enter_async_context(_old_streamable_http_client(
                            uri, headers=self._headers(uri), timeout=cfg.connect_timeout,
                            sse_read_timeout=cfg.call_timeout))
                    session = await stack.enter_async_context(
                        ClientSession(read, write, read_timeout_seconds=timedelta(seconds=cfg.call_timeout)))
                    await asyncio.wait_for(session.initialize(), cfg.connect_timeout)
                    return await op(session)
        except StackError:
            raise
        except BaseException as exc:  # anyio wraps transport failures in exception groups
            if isinstance(exc, (asyncio.CancelledError, KeyboardInterrupt, SystemExit)):
                raise
            raise self._error(exc, where, doing) from None

    @staticmethod
    def _error(exc: BaseException, where: str, doing: str) -> StackError:
        leaves = _leaves(exc)
        for leaf in leaves:
            if isinstance(leaf, StackError):
                return leaf
        for leaf in leaves:
            if isinstance(leaf, httpx.ConnectError):
                return UpstreamError(f"cannot reach {where}: {leaf}")
            if isinstance(leaf, httpx.TimeoutException | TimeoutError):
                return UpstreamTimeoutError(f"{where} did not answer in time while {doing}")
            if isinstance(leaf, httpx.HTTPStatusError):
                return UpstreamError(f"{where} answered HTTP {leaf.response.status_code} while {doing}")
            if isinstance(leaf, McpError):
                return UpstreamError(f"{where} refused {doing}: {leaf.error.message}")
        first = leaves[0]
        return UpstreamError(f"{where} failed while {doing}: {type(first).__name__}: {first}")
