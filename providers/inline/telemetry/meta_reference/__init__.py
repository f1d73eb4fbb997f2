"""``inline::meta-reference`` telemetry: traces of every request to the console,
a span store (SQLite, or PostgreSQL through a store config) and any
OpenTelemetry collector (OTLP/HTTP); trace and span queries over the store."""

from __future__ import annotations

import stack
from stack.registry import ProviderContext, ProviderSpec

from .config import MetaReferenceTelemetryConfig, TelemetrySink

__all__ = ["MetaReferenceTelemetryConfig", "TelemetrySink", "create", "register_providers"]


async def create(config: MetaReferenceTelemetryConfig, context: ProviderContext):
    from .provider import MetaReferenceTelemetry

    provider = MetaReferenceTelemetry(config, context)
    await provider.initialize()
    return provider


@stack.hookimpl
def register_providers(register):
    register(
        ProviderSpec(
            api="telemetry",
            provider_type="inline::meta-reference",
            config=MetaReferenceTelemetryConfig,
            factory=create,
            optional_api_dependencies=("datasetio", "datasets"),
            description="Traces of every request (router, provider and upstream spans) to the console, "
            "a SQLite or PostgreSQL span store and OpenTelemetry collectors (OTLP/HTTP); trace and span queries",
        )
    )
