"""Fixtures shared by the end-to-end tests."""

from __future__ import annotations

import pytest
import yaml

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
