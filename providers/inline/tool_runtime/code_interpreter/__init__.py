"""``inline::code-interpreter``: the ``code_interpreter`` tool, Python run in a sandbox
(bubblewrap where available, else a subprocess with resource limits)."""

from __future__ import annotations

import stack
from stack.apis.tool_runtime import ToolRuntime
from stack.registry import ProviderContext, ProviderSpec

from .config import CodeInterpreterConfig

__all__ = ["CodeInterpreterConfig", "create", "register_providers"]


async def create(config: CodeInterpreterConfig, context: ProviderContext):
    import asyncio
    import logging

    from . import _sandbox
    from .provider import CodeInterpreterToolRuntime

    async def detect() -> _sandbox.Sandbox:
        sandbox = await _sandbox.detect(config)
        logging.getLogger(__name__).info("code-interpreter %s: %s", context.provider_id, sandbox.describe())
        return sandbox

    if config.sandbox == "auto" and config.python is None:
        # auto with this server's Python always ends in a usable sandbox, and finding which
        # takes two Python start-ups (~0.1 s): found while the rest of the stack starts
        return CodeInterpreterToolRuntime(config, asyncio.create_task(detect(), name="code-interpreter-sandbox"))
    return CodeInterpreterToolRuntime(config, await detect())  # what was asked for may be refused: at start-up


@stack.hookimpl
def register_providers(register):
    register(
        ProviderSpec(
            api="tool_runtime",
            serves=ToolRuntime,  # no rag-tool routes
            provider_type="inline::code-interpreter",
            config=CodeInterpreterConfig,
            factory=create,
            description="The code_interpreter tool: Python in a sandbox (bubblewrap, else a limited subprocess)",
        )
    )
