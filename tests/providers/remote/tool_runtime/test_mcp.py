"""remote::model-context-protocol against a real MCP server (FastMCP), over both transports."""

from __future__ import annotations

from pathlib import Path

import pytest

from providers.remote.tool_runtime.model_context_protocol import MCPConfig, create, register_providers
from stack.apis._content import URL
from stack.apis.tool_groups import ToolGroup
from stack.errors import BadRequestError, NotFoundError, UpstreamError
from stack.fetcher import FetchConfig, URLFetcher
from stack.registry import ProviderContext
from tests.providers.remote.tool_runtime.mcp_server import MCPServerThread
from tests.support import free_port


LOOPBACK_ALLOWED = FetchConfig(allow_networks=["127.0.0.1/32"])  # the test servers listen on loopback


def _context(fetch: FetchConfig = LOOPBACK_ALLOWED) -> ProviderContext:
    specs = []
    register_providers(specs.append)
    return ProviderContext(provider_id="mcp", spec=specs[0], image_name="test", data_dir=Path("."),
                           fetcher=URLFetcher(fetch))


async def make(fetch: FetchConfig = LOOPBACK_ALLOWED, **config):
    return await create(MCPConfig(**config), _context(fetch))


@pytest.fixture(scope="module", params=["streamable_http", "sse"])
def server(request):
    with MCPServerThread(request.param) as running:
        yield running


async def test_lists_tools_with_parameters_from_their_json_schema(server):
    runtime = await make()
    tools = {t.name: t for t in await runtime.list_runtime_tools(tool_group_id="mcp::test", mcp_endpoint=URL(uri=server.url))}
    assert sorted(tools) == ["add", "echo", "fail"]
    add = tools["add"]
    assert add.description == "Add two integers."
    assert [(p.name, p.parameter_type, p.required, p.default) for p in add.parameters] == [
        ("a", "integer", True, None), ("b", "integer", False, 2)]
    assert [(p.name, p.parameter_type, p.required) for p in tools["echo"].parameters] == [
        ("text", "string", True), ("shout", "boolean", False)]
    assert add.metadata["endpoint"] == server.url
    assert add.metadata["input_schema"]["required"] == ["a"]


async def test_invokes_a_tool(server):
    runtime = await make()
    await runtime.list_runtime_tools(tool_group_id="mcp::test", mcp_endpoint=URL(uri=server.url))
    result = await runtime.invoke_tool(tool_name="add", kwargs={"a": 40})
    assert [item.text for item in result.content] == ["42"]
    assert result.error_code is None
    shouted = await runtime.invoke_tool(tool_name="echo", kwargs={"text": "hi", "shout": True})
    assert shouted.content[0].text == "HI"


async def test_a_failing_tool_is_an_error_result_not_an_exception(server):
    runtime = await make()
    await runtime.list_runtime_tools(tool_group_id="mcp::test", mcp_endpoint=URL(uri=server.url))
    result = await runtime.invoke_tool(tool_name="fail", kwargs={"reason": "boom"})
    assert result.error_code == 1
    assert "boom" in result.error_message


async def test_transport_forced_by_config(server):
    other = "sse" if server.transport == "streamable_http" else "streamable_http"
    with pytest.raises(UpstreamError):  # the wrong protocol for this URL fails cleanly
        await (await make(transport=other, connect_timeout=2, call_timeout=2)).list_runtime_tools(
            tool_group_id="g", mcp_endpoint=URL(uri=server.url))
    right = await make(transport=server.transport)
    assert len(await right.list_runtime_tools(tool_group_id="g", mcp_endpoint={"uri": server.url})) == 3


async def test_an_unknown_tool_is_404():
    runtime = await make()
    with pytest.raises(NotFoundError, match="'nope' not found"):
        await runtime.invoke_tool(tool_name="nope", kwargs={})


async def test_groups_registered_before_a_restart_are_listed_on_first_use(server):
    # a fresh provider hears of the group from the routing table, but not of its tools
    runtime = await make()
    await runtime.register_tool_group(ToolGroup(identifier="mcp::test", provider_id="mcp",
                                                provider_resource_id="mcp::test", mcp_endpoint=URL(uri=server.url)))
    result = await runtime.invoke_tool(tool_name="add", kwargs={"a": 1, "b": 1})
    assert result.content[0].text == "2"
    await runtime.unregister_tool_group(ToolGroup(identifier="mcp::test", provider_id="mcp",
                                                  provider_resource_id="mcp::test", mcp_endpoint=URL(uri=server.url)))
    with pytest.raises(NotFoundError):
        await runtime.invoke_tool(tool_name="add", kwargs={"a": 1})


@pytest.mark.parametrize("path", ["/mcp", "/sse"])
async def test_an_unreachable_server_is_502_naming_the_url(path):
    url = f"http://127.0.0.1:{free_port()}{path}"
    runtime = await make(connect_timeout=2)
    with pytest.raises(UpstreamError) as info:
        await runtime.list_runtime_tools(tool_group_id="g", mcp_endpoint=URL(uri=url))
    assert url in info.value.message
    assert "cannot reach" in info.value.message


async def test_a_group_needs_an_http_endpoint():
    runtime = await make()
    with pytest.raises(BadRequestError) as info:
        await runtime.list_runtime_tools(tool_group_id="g")
    assert info.value.field == "mcp_endpoint"
    with pytest.raises(BadRequestError, match="http:// or https://"):
        await runtime.list_runtime_tools(tool_group_id="g", mcp_endpoint=URL(uri="file:///etc/passwd"))


async def test_an_endpoint_the_fetch_rules_refuse_is_a_400(server):
    """Tool groups name their MCP server in a request: loopback and private
    addresses are reached only when server.fetch allows them (SSRF)."""
    runtime = await make(FetchConfig())  # the defaults: public addresses only
    for uri in (server.url, "http://10.0.0.7/mcp", "http://[::1]:8000/mcp"):
        with pytest.raises(BadRequestError) as info:
            await runtime.list_runtime_tools(tool_group_id="g", mcp_endpoint=URL(uri=uri))
        assert info.value.field == "mcp_endpoint"
        assert "server.fetch.allow_networks" in info.value.message
