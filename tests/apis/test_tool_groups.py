"""Tool groups and tools: resources, tool definitions and run-config entries."""

import pytest
import yaml
from pydantic import ValidationError

from stack.apis._content import URL
from stack.apis.tool_groups import (
    ListToolGroupsResponse,
    ListToolsResponse,
    Tool,
    ToolDef,
    ToolGroup,
    ToolGroupInput,
    ToolGroups,
    ToolHost,
    ToolParameter,
)

TOOL = {
    "identifier": "web_search",
    "provider_resource_id": "web_search",
    "provider_id": "tavily-search",
    "type": "tool",
    "toolgroup_id": "builtin::websearch",
    "tool_host": "distribution",
    "description": "Search the web",
    "parameters": [
        {"name": "query", "parameter_type": "string", "description": "what to search", "required": True,
         "default": None}
    ],
    "metadata": None,
}


def test_tool_round_trips():
    tool = Tool.model_validate(TOOL)
    assert tool.tool_host is ToolHost.distribution
    assert ListToolsResponse(data=[tool]).model_dump(mode="json") == {"data": [TOOL]}


def test_tool_rejects_unknown_host():
    with pytest.raises(ValidationError, match="tool_host"):
        Tool.model_validate({**TOOL, "tool_host": "cloud"})


def test_tool_parameter_is_required_by_default_and_keeps_any_default():
    param = ToolParameter(name="n", parameter_type="int", description="count")
    assert param.required is True and param.default is None
    assert ToolParameter.model_validate(
        {"name": "tags", "parameter_type": "list", "description": "d", "default": ["a"]}
    ).default == ["a"]


def test_tool_def_needs_only_a_name():
    tool_def = ToolDef(name="get_weather")
    assert tool_def.description is None and tool_def.parameters is None
    full = {"name": "f", "description": "d", "parameters": [TOOL["parameters"][0]], "metadata": {"x": 1}}
    assert ToolDef.model_validate(full).model_dump(mode="json") == full


def test_tool_group_with_mcp_endpoint_round_trips():
    group = {
        "identifier": "mcp::files",
        "provider_resource_id": "mcp::files",
        "provider_id": "model-context-protocol",
        "type": "tool_group",
        "mcp_endpoint": {"uri": "http://localhost:8000/sse"},
        "args": {"root": "/tmp"},
    }
    parsed = ToolGroup.model_validate(group)
    assert parsed.mcp_endpoint == URL(uri="http://localhost:8000/sse")
    assert ListToolGroupsResponse(data=[parsed]).model_dump(mode="json") == {"data": [group]}


def test_tool_group_inputs_from_a_llama_stack_run_config():
    # As in llama-stack 0.1.0's distributions/*/run.yaml.
    entries = yaml.safe_load(
        """
        - toolgroup_id: builtin::websearch
          provider_id: tavily-search
        - toolgroup_id: builtin::rag
          provider_id: rag-runtime
        - toolgroup_id: builtin::code_interpreter
          provider_id: code-interpreter
        """
    )
    parsed = [ToolGroupInput.model_validate(e) for e in entries]
    assert [p.provider_id for p in parsed] == ["tavily-search", "rag-runtime", "code-interpreter"]
    with pytest.raises(ValidationError, match="provider_type"):
        ToolGroupInput.model_validate({**entries[0], "provider_type": "remote::tavily"})


def test_register_body(body_model):
    model = body_model(ToolGroups.register_tool_group)
    body = model.model_validate(
        {"toolgroup_id": "mcp::x", "provider_id": "mcp", "mcp_endpoint": {"uri": "http://h/sse"}}
    )
    assert body.mcp_endpoint.uri == "http://h/sse" and body.args is None
    with pytest.raises(ValidationError, match="provider_id"):
        model.model_validate({"toolgroup_id": "x"})
