"""DatasetIO: read a registered dataset page by page and append rows to it."""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from pydantic import BaseModel

from ._webmethod import webmethod


class PaginatedRowsResult(BaseModel):
    """One page of rows; ``next_page_token`` is absent on the last page."""

    rows: list[dict[str, Any]]
    total_count: int
    next_page_token: str | None = None


@runtime_checkable
class DatasetReader(Protocol):
    """The reading half of DatasetIO: what a read-only provider serves (``ProviderSpec(serves=...)``)."""

    @webmethod(route="/v1/datasetio/rows", method="GET")
    async def get_rows_paginated(
        self,
        dataset_id: str,
        rows_in_page: int,
        page_token: str | None = None,
        filter_condition: str | None = None,
    ) -> PaginatedRowsResult: ...


@runtime_checkable
class DatasetIO(DatasetReader, Protocol):
    @webmethod(route="/v1/datasetio/rows", method="POST")
    async def append_rows(self, dataset_id: str, rows: list[dict[str, Any]]) -> None: ...


PROTOCOL = DatasetIO
