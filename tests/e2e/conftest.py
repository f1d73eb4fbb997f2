"""Fixtures shared by the end-to-end tests."""

from __future__ import annotations

import pytest
import yaml
from llama_stack_client import LlamaStackClient
from openai import OpenAI

from tests.providers.remote.tool_runtime.mcp_server import MCPServerThread
from tests.support import ServerProcess, starter_with_mcp_config


@pytest.fixture(scope="module")
def mcp_server():
    """A real MCP server (FastMCP over streamable HTTP) with add, echo and fail tools."""
    with MCPServerThread("streamable_http") as running:
        yield running


@pytest.fixture(scope="module")
def starter_with_mcp(tmp_path_factory):
    """``polystack run`` of the starter distribution plus an MCP tool runtime (provider ``mcp``)."""
    home = tmp_path_factory.mktemp("starter-mcp-home")
    config = starter_with_mcp_config()
    run_yaml = home / "run.yaml"
    run_yaml.write_text(yaml.safe_dump(config))
    with ServerProcess(str(run_yaml), home=home) as proc:
        yield proc


@pytest.fixture(scope="module")
def llama(server):
    """llama-stack-client 0.1.0 on the module's ``server``."""
    return LlamaStackClient(base_url=server.base_url, timeout=60)


@pytest.fixture(scope="module")
def oai(server):
    """The openai client on the module's ``server``."""
    return OpenAI(base_url=server.base_url + "/v1", api_key="unused", max_retries=0, timeout=60)
