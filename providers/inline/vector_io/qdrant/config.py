"""``config:`` of ``inline::qdrant`` (qdrant-client's embedded local mode)."""

from __future__ import annotations

from pydantic import Field

from providers.utils.vector_io.qdrant_config import QdrantCommonConfig


class QdrantLocalConfig(QdrantCommonConfig):
    """Every key has a default: ``config: {}`` keeps collections in ``$POLYSTACK_HOME/<image_name>/qdrant``."""

    path: str | None = Field(
        None,
        description="Folder of the embedded Qdrant storage ('~' is expanded; ':memory:' keeps it in memory). "
        "Unset: $POLYSTACK_HOME/<image_name>/qdrant. One process at a time may open it",
    )
