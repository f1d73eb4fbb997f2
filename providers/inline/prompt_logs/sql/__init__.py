"""``inline::sql`` prompt logs: Humanloop-compatible logs, sessions, feedback,
prompts and their versions in the SQL store (SQLite or PostgreSQL)."""

from __future__ import annotations

import stack
from stack.registry import ProviderContext, ProviderSpec

from .config import SqlPromptLogsConfig

__all__ = ["SqlPromptLogsConfig", "create", "register_providers"]


async def create(config: SqlPromptLogsConfig, context: ProviderContext):
    from .provider import SqlPromptLogs

    impl = SqlPromptLogs(config, context)
    await impl.initialize()
    return impl


@stack.hookimpl
def register_providers(register):
    register(
        ProviderSpec(
            api="prompt_logs",
            provider_type="inline::sql",
            config=SqlPromptLogsConfig,
            factory=create,
            optional_api_dependencies=("inference", "datasets", "datasetio"),
            description="Humanloop-compatible prompt logs (v4 logs, sessions, feedback; v5 prompts/log, logs) in the SQL store",
        )
    )
