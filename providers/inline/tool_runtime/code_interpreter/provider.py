"""The ``inline::code-interpreter`` tool runtime: one tool, ``code_interpreter``, that runs Python."""

from __future__ import annotations

import asyncio
import signal
from typing import Any

from stack.apis.tool_groups import ToolDef, ToolParameter
from stack.apis.tool_runtime import ToolInvocationResult
from stack.errors import BadRequestError, NotFoundError
from stack.request_context import tool_files_dir

from . import _sandbox
from .config import CodeInterpreterConfig

TOOL_NAME = "code_interpreter"
TIMEOUT_CODE = 124  # what coreutils' timeout(1) exits with


class CodeInterpreterToolRuntime:
    """Runs the ``code`` argument as a Python script in the sandbox found at start-up
    (``sandbox``: found, or the task finding it while the server starts)."""

    def __init__(self, config: CodeInterpreterConfig, sandbox: _sandbox.Sandbox | asyncio.Task) -> None:
        self.config = config
        self._sandbox = sandbox
        self.limits = _sandbox.Limits.from_config(config)
        self._slots = asyncio.Semaphore(config.max_concurrent_runs)

    async def ready(self) -> _sandbox.Sandbox:
        """The sandbox, once found."""
        if isinstance(self._sandbox, asyncio.Task):
            self._sandbox = await self._sandbox
        return self._sandbox

    @property
    def sandbox(self) -> _sandbox.Sandbox:
        if isinstance(self._sandbox, asyncio.Task):
            raise RuntimeError("the sandbox is still being found: await ready() first")
        return self._sandbox

    async def shutdown(self) -> None:
        if isinstance(self._sandbox, asyncio.Task):
            self._sandbox.cancel()

    async def tool_def(self) -> ToolDef:
        return ToolDef(
            name=TOOL_NAME,
            description="Run Python code in a sandbox and return its stdout and stderr",
            parameters=[ToolParameter(name="code", parameter_type="string", description="The Python code to run")],
            metadata=(await self.ready()).describe(),
        )

    async def list_runtime_tools(self, tool_group_id: str | None = None, mcp_endpoint: Any = None) -> list[ToolDef]:
        if mcp_endpoint is not None:
            raise BadRequestError("inline::code-interpreter serves no MCP endpoint", field="mcp_endpoint")
        return [await self.tool_def()]

    async def invoke_tool(self, tool_name: str, kwargs: dict[str, Any]) -> ToolInvocationResult:
        if tool_name != TOOL_NAME:
            raise NotFoundError("tool", tool_name, [TOOL_NAME])
        code = kwargs.get("code")
        if not isinstance(code, str):
            raise BadRequestError("a string of Python code is required", field="kwargs.code")
        files = tool_files_dir()  # an agent session's documents, set by the agents provider in-process
        async with self._slots:
            result = await _sandbox.run(await self.ready(), code, self.limits, files if files and files.is_dir() else None)
        return self._to_invocation_result(result)

    def _to_invocation_result(self, result: _sandbox.RunResult) -> ToolInvocationResult:
        error_message = error_code = None
        rc = result.returncode
        if result.timed_out:
            status = error_message = f"timed out after {self.config.timeout_seconds:g}s (the run was killed)"
            error_code = TIMEOUT_CODE
        elif rc is None or rc < 0:
            sig = -rc if rc is not None else signal.SIGKILL
            status = error_message = self._signal_message(sig)
            error_code = 128 + sig
        elif rc > 0:
            last = result.stderr.strip().splitlines()[-1:] or [""]
            error_message = f"exit code {rc}" + (f": {last[0]}" if last[0] else "")
            if "MemoryError" in result.stderr:
                error_message += f" (memory limit: {self.config.memory_mb} MiB)"
            status = "error: " + error_message
            error_code = rc
        else:
            status = "completed"
        pieces = [status]
        for name, text, truncated in (("stdout", result.stdout, result.stdout_truncated),
                                      ("stderr", result.stderr, result.stderr_truncated)):
            if text:
                if truncated:
                    text += f"\n... ({name} truncated at {self.config.max_output_bytes} bytes)"
                pieces += [f"[{name}]", text.rstrip("\n"), f"[/{name}]"]
        return ToolInvocationResult(content="\n".join(pieces), error_message=error_message, error_code=error_code)

    def _signal_message(self, sig: int) -> str:
        if sig == signal.SIGXCPU:
            return f"killed: CPU time limit of {self.config.cpu_seconds}s exceeded"
        if sig == signal.SIGXFSZ:
            return f"killed: file size limit of {self.config.max_file_mb} MiB exceeded"
        try:
            name = signal.Signals(sig).name
        except ValueError:
            name = f"signal {sig}"
        return f"killed by {name}"


