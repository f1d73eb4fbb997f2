"""``config:`` of an ``inline::localfs`` datasetio provider (pydantic only: cheap to import)."""

from __future__ import annotations

from pydantic import Field

from stack.storage import StoreConfig

from providers.utils.datasetio.paging import PagingConfig


class LocalFSDatasetIOConfig(PagingConfig):
    """Every key has a default: ``config: {}`` keeps appended rows in
    ``$POLYSTACK_HOME/<image_name>/localfs_datasetio.db``. llama-stack 0.1.x's
    ``kvstore`` key is kept; it names a SQL store here (sqlite or postgres)."""

    kvstore: StoreConfig | None = Field(
        None,
        description="Where registered datasets and the rows appended to them are kept (sqlite or postgres; "
        "replicas share it). Unset: sqlite at $POLYSTACK_HOME/<image_name>/localfs_datasetio.db",
    )
