"""``remote::huggingface`` datasetio: datasets of the Hugging Face Hub (or saved
with ``save_to_disk``), loaded with the ``datasets`` library. Read-only:
``append_rows`` answers 501."""

from __future__ import annotations

import stack
from stack.apis.datasetio import DatasetReader
from stack.registry import ProviderContext, ProviderSpec

from .config import HuggingfaceDatasetIOConfig

__all__ = ["HuggingfaceDatasetIOConfig", "create", "register_providers"]


async def create(config: HuggingfaceDatasetIOConfig, context: ProviderContext):
    from .provider import HuggingfaceDatasetIO

    provider = HuggingfaceDatasetIO(config, context)
    await provider.initialize()
    return provider


@stack.hookimpl
def register_providers(register):
    register(
        ProviderSpec(
            api="datasetio",
            serves=DatasetReader,  # the datasets library cannot append to a Hub dataset
            provider_type="remote::huggingface",
            config=HuggingfaceDatasetIOConfig,
            factory=create,
            description="Datasets of the Hugging Face Hub or saved with save_to_disk, read with the datasets library",
        )
    )
