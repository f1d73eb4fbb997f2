"""A real MCP server for tests: the SDK's own FastMCP, served by uvicorn in a thread on a free
loopback port, over streamable HTTP (``/mcp``) or SSE (``/sse``)."""

from __future__ import annotations

import threading
import time

import uvicorn
from mcp.server.fastmcp import FastMCP

from tests.support import free_port


def build_server() -> FastMCP:
    server = FastMCP("polystack-test", log_level="CRITICAL")  # its session-teardown noise is not ours

    @server.tool()
    def add(a: int, b: int = 2) -> int:
        """Add two integers."""
        return a + b

    @server.tool()
    def echo(text: str, shout: bool = False) -> str:
        """Repeat the text, in capitals when asked to shout."""
        return text.upper() if shout else text

    @server.tool()
    def fail(reason: str) -> str:
        """Always fails with the given reason."""
        raise ValueError(reason)

    return server


class MCPServerThread:
    """``with MCPServerThread("sse") as server: server.url`` -- stopped on exit."""

    def __init__(self, transport: str = "streamable_http") -> None:
        self.transport = transport
        self.port = free_port()
        mcp = build_server()
        app = mcp.sse_app() if transport == "sse" else mcp.streamable_http_app()
        path = "/sse" if transport == "sse" else "/mcp"
        self.url = f"http://127.0.0.1:{self.port}{path}"
        self._server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning",
                                                     lifespan="on"))
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    def start(self) -> "MCPServerThread":
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError(f"the test MCP server ({self.transport}) did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(10)

    def __enter__(self) -> "MCPServerThread":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
