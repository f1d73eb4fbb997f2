"""Tools end to end: a real ``polystack run`` of the starter distribution (plus an MCP
provider) driven by llama-stack-client 0.1.0; an MCP server (FastMCP) runs in the test."""

from __future__ import annotations

import pytest
from llama_stack_client import APIStatusError, LlamaStackClient


@pytest.fixture(scope="module")
def server(starter_with_mcp):
    return starter_with_mcp


@pytest.fixture
def client(server):
    return LlamaStackClient(base_url=server.base_url)


def test_starter_lists_the_code_interpreter_group_and_tool(client):
    groups = {g.identifier: g for g in client.toolgroups.list()}
    assert groups["builtin::code_interpreter"].provider_id == "code-interpreter"
    (tool,) = client.tools.list(toolgroup_id="builtin::code_interpreter")
    assert tool.identifier == "code_interpreter"
    assert tool.tool_host == "distribution"
    assert [(p.name, p.parameter_type, p.required) for p in tool.parameters] == [("code", "string", True)]


def test_runtime_list_tools_answers_jsonl(client):
    (runtime_tool,) = client.tool_runtime.list_tools(tool_group_id="builtin::code_interpreter")
    assert runtime_tool.name == "code_interpreter"
    assert runtime_tool.parameters[0].name == "code"


def test_invokes_the_code_interpreter(client):
    result = client.tool_runtime.invoke_tool(tool_name="code_interpreter", kwargs={"code": "print(sum(range(10)))"})
    assert result.content == "completed\n[stdout]\n45\n[/stdout]"
    assert result.error_code is None
    failed = client.tool_runtime.invoke_tool(tool_name="code_interpreter", kwargs={"code": "raise SystemExit(4)"})
    assert failed.error_code == 4


def test_registers_an_mcp_group_and_invokes_its_tool(client, mcp_server):
    client.toolgroups.register(toolgroup_id="mcp::test", provider_id="mcp", mcp_endpoint={"uri": mcp_server.url})
    try:
        tools = {t.identifier: t for t in client.tools.list(toolgroup_id="mcp::test")}
        assert sorted(tools) == ["add", "echo", "fail"]
        assert tools["add"].tool_host == "model_context_protocol"
        assert [(p.name, p.parameter_type, p.required) for p in tools["add"].parameters] == [
            ("a", "integer", True), ("b", "integer", False)]
        result = client.tool_runtime.invoke_tool(tool_name="add", kwargs={"a": 20, "b": 22})
        assert [item.text for item in result.content] == ["42"]
        assert result.error_code is None
    finally:
        client.toolgroups.unregister(toolgroup_id="mcp::test")
    assert "mcp::test" not in [g.identifier for g in client.toolgroups.list()]


def test_unknown_tool_is_404(client):
    with pytest.raises(APIStatusError) as info:
        client.tool_runtime.invoke_tool(tool_name="no_such_tool", kwargs={})
    assert info.value.status_code == 404
    assert "'no_such_tool' not found" in info.value.response.json()["detail"]


def test_unreachable_mcp_server_is_502(client):
    with pytest.raises(APIStatusError) as info:
        client.toolgroups.register(toolgroup_id="mcp::gone", provider_id="mcp",
                                   mcp_endpoint={"uri": "http://127.0.0.1:9/mcp"})
    assert info.value.status_code == 502
    assert "http://127.0.0.1:9/mcp" in info.value.response.json()["detail"]
