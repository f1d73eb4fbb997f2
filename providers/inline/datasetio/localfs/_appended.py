"""Rows appended to datasets, in the SQL store every replica shares.

One append request is one row of ``batches`` (written in one INSERT: all of
it or nothing); ``batch_index`` lists the batches and their sizes so a page
reads only the batches it overlaps. A batch is numbered one past the latest;
two replicas taking the same number meet on the primary key and the loser
takes the next.
"""

from __future__ import annotations

from typing import Any

from stack.errors import ServiceUnavailableError
from stack.storage import ColumnType, DuplicateKeyError, SqlStore

_ATTEMPTS = 20


class AppendedRows:
    def __init__(self, store: SqlStore) -> None:
        self.store = store

    async def initialize(self) -> None:
        await self.store.create_table(
            "datasetio_batches", {"dataset_id": ColumnType.TEXT, "batch": ColumnType.INTEGER, "rows": ColumnType.JSON},
            primary_key=("dataset_id", "batch"))
        await self.store.create_table(
            "datasetio_batch_index", {"dataset_id": ColumnType.TEXT, "batch": ColumnType.INTEGER, "row_count": ColumnType.INTEGER},
            primary_key=("dataset_id", "batch"))

    async def forget(self, dataset_id: str) -> None:
        """Every row appended to the dataset."""
        for table in ("datasetio_batch_index", "datasetio_batches"):
            await self.store.delete(table, {"dataset_id": dataset_id})

    # -- rows ---------------------------------------------------------------------------------

    async def append(self, dataset_id: str, rows: list[dict[str, Any]]) -> None:
        for _attempt in range(_ATTEMPTS):
            latest = await self.store.fetch_one("datasetio_batches", {"dataset_id": dataset_id}, order_by=[("batch", "desc")])
            batch = latest["batch"] + 1 if latest else 0
            try:
                await self.store.insert("datasetio_batches", {"dataset_id": dataset_id, "batch": batch, "rows": rows})
            except DuplicateKeyError:
                continue  # another replica took this number
            await self.store.insert("datasetio_batch_index", {"dataset_id": dataset_id, "batch": batch, "row_count": len(rows)})
            return
        raise ServiceUnavailableError(f"dataset {dataset_id!r} is being appended to by many writers; try again",
                                      retry_after=1)

    async def _batches(self, dataset_id: str) -> list[dict[str, Any]]:
        return await self.store.fetch_all("datasetio_batch_index", {"dataset_id": dataset_id}, order_by=[("batch", "asc")])

    def source(self, dataset_id: str) -> "AppendedSource":
        return AppendedSource(self, dataset_id)


class AppendedSource:
    """The rows appended to one dataset, read by position (a paging RowSource)."""

    def __init__(self, appended: AppendedRows, dataset_id: str) -> None:
        self.appended, self.dataset_id = appended, dataset_id
        self._index: list[dict[str, Any]] | None = None

    async def _batches(self) -> list[dict[str, Any]]:
        if self._index is None:  # one snapshot per page, so count and read agree
            self._index = await self.appended._batches(self.dataset_id)
        return self._index

    async def count(self) -> int:
        return sum(b["row_count"] for b in await self._batches())

    async def read(self, start: int, stop: int) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        first = 0
        for entry in await self._batches():
            lo, hi = max(start, first), min(stop, first + entry["row_count"])
            if lo < hi:
                batch = await self.appended.store.fetch_one(
                    "datasetio_batches", {"dataset_id": self.dataset_id, "batch": entry["batch"]})
                rows += batch["rows"][lo - first:hi - first]
            first += entry["row_count"]
        return rows
