"""``inline::localfs`` datasetio: JSONL, CSV and Parquet files (a local path, file://,
http(s) or data: URL, read through the stack's fetcher), paged without loading
them whole; appended rows kept in the SQL store replicas share."""

from __future__ import annotations

import stack
from stack.registry import ProviderContext, ProviderSpec

from .config import LocalFSDatasetIOConfig

__all__ = ["LocalFSDatasetIOConfig", "create", "register_providers"]


async def create(config: LocalFSDatasetIOConfig, context: ProviderContext):
    from .provider import LocalFSDatasetIO

    provider = LocalFSDatasetIO(config, context)
    await provider.initialize()
    return provider


@stack.hookimpl
def register_providers(register):
    register(
        ProviderSpec(
            api="datasetio",
            provider_type="inline::localfs",
            config=LocalFSDatasetIOConfig,
            factory=create,
            description="Datasets from JSONL, CSV and Parquet files (local, file://, http(s), data:), "
            "paged without loading them whole; appended rows in a SQL store",
        )
    )
