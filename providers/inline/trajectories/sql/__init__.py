"""``inline::sql`` trajectories: W&B Training's models, trajectory logs, metrics and
checkpoints kept in the stack's SQL store (SQLite, or PostgreSQL shared by replicas)."""

from __future__ import annotations

import stack
from stack.registry import ProviderContext, ProviderSpec

from .config import SqlTrajectoriesConfig

__all__ = ["SqlTrajectoriesConfig", "create", "register_providers"]


async def create(config: SqlTrajectoriesConfig, context: ProviderContext):
    from .provider import SqlTrajectories

    impl = SqlTrajectories(config, context)
    await impl.initialize()
    return impl


@stack.hookimpl
def register_providers(register):
    register(
        ProviderSpec(
            api="trajectories",
            provider_type="inline::sql",
            config=SqlTrajectoriesConfig,
            factory=create,
            api_dependencies=("models",),
            optional_api_dependencies=("datasets", "datasetio", "post_training"),
            description="W&B Training compatible trajectory logs, metrics and checkpoints in the SQL store",
        )
    )
