"""Config of the ``inline::sql`` trajectories provider (pydantic only: cheap to import)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from stack.storage import StoreConfig


class SqlTrajectoriesConfig(BaseModel):
    """``config: {}`` works: SQLite under the distribution's data directory."""

    model_config = ConfigDict(extra="forbid")

    store: StoreConfig | None = Field(
        None,
        description="Where models, trajectory groups, metrics and checkpoints are kept (a SQL store: sqlite or "
        "postgres; replicas sharing one PostgreSQL database see the same runs). "
        "Unset: sqlite at $POLYSTACK_HOME/<image_name>/trajectories.db",
    )
    default_entity: str = Field(
        "polystack", min_length=1, description="Entity of models created without one (W&B: the key's default entity)"
    )
