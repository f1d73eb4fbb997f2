"""The datasets a datasetio provider was told of, in its SQL store, so a
replica that never saw the registration (or a restarted server) can open them."""

from __future__ import annotations

from typing import Any, Awaitable, Callable

from stack.apis.datasets import Dataset
from stack.errors import NotFoundError
from stack.storage import ColumnType, SqlStore

TABLE = "datasetio_datasets"


class DatasetDefinitions:
    """Datasets by their provider_resource_id (the id a provider is called with),
    and what the provider opened for each (a file, a loaded dataset)."""

    def __init__(self, store: SqlStore, opener: Callable[[Dataset], Awaitable[Any]]) -> None:
        self.store, self.opener = store, opener
        self._opened: dict[str, tuple[Dataset, Any]] = {}

    async def initialize(self) -> None:
        await self.store.create_table(TABLE, {"dataset_id": ColumnType.TEXT, "dataset": ColumnType.JSON},
                                      primary_key="dataset_id")

    async def register(self, dataset: Dataset) -> Any:
        """Open ``dataset`` (the provider's checks raise here) and keep it."""
        opened = await self.opener(dataset)
        await self.save(dataset)
        self._opened[dataset.provider_resource_id] = (dataset, opened)
        return opened

    async def opened(self, dataset_id: str) -> tuple[Dataset, Any]:
        """The dataset as the store has it now, and what was opened for it; another
        replica may have registered, changed or dropped it since."""
        dataset = await self.load(dataset_id)
        if dataset is None:
            self._opened.pop(dataset_id, None)
            raise NotFoundError("Dataset", dataset_id)
        cached = self._opened.get(dataset_id)
        if cached is None or cached[0] != dataset:
            cached = self._opened[dataset_id] = (dataset, await self.opener(dataset))
        return cached

    async def save(self, dataset: Dataset) -> None:
        await self.store.upsert(TABLE, {"dataset_id": dataset.provider_resource_id,
                                        "dataset": dataset.model_dump(mode="json")}, ["dataset_id"])

    async def load(self, dataset_id: str) -> Dataset | None:
        row = await self.store.fetch_one(TABLE, {"dataset_id": dataset_id})
        return Dataset.model_validate(row["dataset"]) if row else None

    async def forget(self, dataset_id: str) -> None:
        self._opened.pop(dataset_id, None)
        await self.store.delete(TABLE, {"dataset_id": dataset_id})
