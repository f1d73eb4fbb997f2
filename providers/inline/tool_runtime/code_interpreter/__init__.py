"""``inline::code-interpreter``: the ``code_interpreter`` tool, Python run in a sandbox
(bubblewrap where available, else a subprocess with resource limits)."""

from __future__ import annotations

import stack
from stack.apis.tool_runtime import ToolRuntime
from stack.registry import ProviderContext, ProviderSpec

from .config import CodeInterpreterConfig

__all__ = ["CodeInterpreterConfig", "create", "register_providers"]


async def create(config: CodeInterpreterConfig, context: ProviderContext):
    import logging

    from . import _sandbox
    from .provider import CodeInterpreterToolRuntime

    sandbox = await _sandbox.detect(config)
    logging.getLogger(__name__).info("code-interpreter %s: %s", context.provider_id, sandbox.describe())
    return CodeInterpreterToolRuntime(config, sandbox)


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
