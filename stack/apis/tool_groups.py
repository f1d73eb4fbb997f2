"""Tool groups and tools: the registry of tools agents can call, grouped by provider."""

from __future__ import annotations

from enum import Enum
from typing import Any, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict

from ._content import URL
from ._resource import Resource
from ._webmethod import webmethod


class ToolHost(str, Enum):
    distribution = "distribution"
    client = "client"
    model_context_protocol = "model_context_protocol"


class ToolParameter(BaseModel):
    name: str
    parameter_type: str
    description: str
    required: bool = True
    default: Any | None = None


class ToolDef(BaseModel):
    """A tool as a tool provider (or a client) describes it."""

    name: str
    description: str | None = None
    parameters: list[ToolParameter] | None = None
    metadata: dict[str, Any] | None = None


class Tool(Resource):
    """A tool registered with the stack, as part of ``toolgroup_id``."""

    type: Literal["tool"] = "tool"
    toolgroup_id: str
    tool_host: ToolHost
    description: str
    parameters: list[ToolParameter]
    metadata: dict[str, Any] | None = None


class ToolGroup(Resource):
    type: Literal["tool_group"] = "tool_group"
    mcp_endpoint: URL | None = None
    args: dict[str, Any] | None = None


class ListToolGroupsResponse(BaseModel):
    data: list[ToolGroup]


class ListToolsResponse(BaseModel):
    data: list[Tool]


class ToolGroupInput(BaseModel):
    """A tool group as listed under ``tool_groups:`` in a run config."""

    model_config = ConfigDict(extra="forbid")

    toolgroup_id: str
    provider_id: str
    args: dict[str, Any] | None = None
    mcp_endpoint: URL | None = None


@runtime_checkable
class ToolGroups(Protocol):
    @webmethod(route="/v1/toolgroups", method="POST")
    async def register_tool_group(
        self,
        toolgroup_id: str,
        provider_id: str,
        mcp_endpoint: URL | None = None,
        args: dict[str, Any] | None = None,
    ) -> None: ...

    @webmethod(route="/v1/toolgroups/{toolgroup_id}", method="GET")
    async def get_tool_group(self, toolgroup_id: str) -> ToolGroup: ...

    @webmethod(route="/v1/toolgroups", method="GET")
    async def list_tool_groups(self) -> ListToolGroupsResponse: ...

    @webmethod(route="/v1/toolgroups/{toolgroup_id}", method="DELETE")
    async def unregister_tool_group(self, toolgroup_id: str) -> None: ...

    @webmethod(route="/v1/tools", method="GET")
    async def list_tools(self, toolgroup_id: str | None = None) -> ListToolsResponse: ...

    @webmethod(route="/v1/tools/{tool_name}", method="GET")
    async def get_tool(self, tool_name: str) -> Tool: ...


PROTOCOL = ToolGroups
