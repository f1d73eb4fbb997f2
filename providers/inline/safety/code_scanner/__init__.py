"""``inline::code-scanner``: a shield that flags insecure code in messages (eval and exec,
unsafe deserialization, shell injection, weak hashes, unbounded C string calls, DOM
injection, SQL built by concatenation, hard-coded secrets), by static rules."""

from __future__ import annotations

import stack
from stack.registry import ProviderContext, ProviderSpec

from .config import CodeScannerConfig

__all__ = ["CodeScannerConfig", "create", "register_providers"]


async def create(config: CodeScannerConfig, context: ProviderContext):
    from .provider import CodeScannerSafety

    return CodeScannerSafety(config)


@stack.hookimpl
def register_providers(register):
    register(ProviderSpec(
        api="safety", provider_type="inline::code-scanner", config=CodeScannerConfig, factory=create,
        description="Insecure-code shield: static rules for Python, C/C++, JavaScript, SQL and secrets",
    ))
