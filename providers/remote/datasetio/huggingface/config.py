"""``config:`` of a ``remote::huggingface`` datasetio provider (pydantic only: cheap to import)."""

from __future__ import annotations

from pydantic import Field

from stack.storage import StoreConfig

from providers.utils.datasetio.paging import PagingConfig


class HuggingfaceDatasetIOConfig(PagingConfig):
    """Every key has a default (llama-stack 0.1.x's ``config: {}`` validates)."""

    kvstore: StoreConfig | None = Field(
        None,
        description="Where registered datasets are kept so replicas can open them (sqlite or postgres). "
        "Unset: sqlite at $POLYSTACK_HOME/<image_name>/huggingface_datasetio.db",
    )
    endpoint: str = Field(
        "https://huggingface.co",
        description="The Hugging Face Hub; checked against server.fetch before a dataset is downloaded from it",
    )
