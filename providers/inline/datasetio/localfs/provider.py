"""``inline::localfs``: datasets read from JSONL, CSV and Parquet files, plus
the rows appended to them (in the SQL store, so every replica sees them)."""

from __future__ import annotations

import asyncio
import hashlib
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from stack.apis.datasetio import PaginatedRowsResult
from stack.apis.datasets import Dataset
from stack.errors import BadRequestError
from stack.registry import ProviderContext
from stack.storage import SqliteStoreConfig, sqlstore_from_config

from providers.utils.datasetio.paging import read_page
from providers.utils.datasetio.rows import check_rows
from providers.utils.datasetio.store import DatasetDefinitions

from ._appended import AppendedRows
from ._sources import FORMATS, DatasetFile, guess_format
from .config import LocalFSDatasetIOConfig


@dataclass
class _Opened:
    file: DatasetFile
    columns: set[str]


class _FileSource:
    """A DatasetFile as a paging RowSource, read in a thread."""

    def __init__(self, file: DatasetFile) -> None:
        self.file = file

    async def count(self) -> int:
        return await asyncio.to_thread(self.file.count)

    async def read(self, start: int, stop: int) -> list[dict[str, Any]]:
        return await asyncio.to_thread(self.file.read, start, stop)


class LocalFSDatasetIO:
    def __init__(self, config: LocalFSDatasetIOConfig, context: ProviderContext) -> None:
        self.config, self.context = config, context
        self.cache_dir = context.data_dir / "localfs_datasets"

    async def initialize(self) -> None:
        store = await sqlstore_from_config(self.config.kvstore or SqliteStoreConfig(),
                                           default_path=self.context.data_dir / "localfs_datasetio.db")
        self.appended, self.definitions = AppendedRows(store), DatasetDefinitions(store, self._open)
        await self.appended.initialize()
        await self.definitions.initialize()

    async def shutdown(self) -> None:
        await self.appended.store.close()

    # -- registration ---------------------------------------------------------------------------

    async def register_dataset(self, dataset: Dataset) -> Dataset:
        """Check the URL and open the file now: a bad URL or file is a 400 naming ``url``."""
        self._cached(dataset.url.uri).unlink(missing_ok=True)  # registering fetches a URL afresh
        await self.definitions.register(dataset)
        return dataset

    async def unregister_dataset(self, dataset: Dataset) -> None:
        await self.appended.forget(dataset.provider_resource_id)
        await self.definitions.forget(dataset.provider_resource_id)

    async def _open(self, dataset: Dataset) -> _Opened:
        uri = dataset.url.uri
        fmt = dataset.metadata.get("format")
        if fmt is not None and fmt not in FORMATS:
            raise BadRequestError(f"{fmt!r} is not one of {', '.join(FORMATS)}", field="metadata.format")
        if uri.lower().startswith("file:") or uri.startswith("/"):
            path = await asyncio.to_thread(self._regular_file, self.context.fetcher.local_path(uri, field="url"))
            fmt = fmt or guess_format(path.name)
        else:
            path = self._cached(uri)
            mime = None
            if not path.exists():
                fetched = await self.context.fetcher.fetch(uri, field="url")
                await asyncio.to_thread(_write_atomically, path, fetched.data)
                mime, uri = fetched.mime_type, fetched.url
            fmt = fmt or guess_format(urlsplit(uri).path if not uri.startswith("data:") else "", mime)
        if fmt is None:
            raise BadRequestError("cannot tell whether it is JSONL, CSV or Parquet from its name or type; "
                                  "say which in metadata.format", field="url")
        file = DatasetFile(path, fmt, dataset.dataset_schema)
        await asyncio.to_thread(file.index)  # one pass now, so pages seek later
        columns = await asyncio.to_thread(file.columns)
        missing = [c for c in dataset.dataset_schema if c not in columns]
        if columns and missing:
            raise BadRequestError(f"column {missing[0]!r} is not in {path.name if fmt != 'jsonl' else 'its first row'} "
                                  f"(which has {', '.join(columns)})", field=f"dataset_schema.{missing[0]}")
        return _Opened(file, set(columns) | set(dataset.dataset_schema))

    def _cached(self, uri: str) -> Path:
        """Where the content of an http(s) or data: URL is kept once fetched."""
        return self.cache_dir / hashlib.sha256(uri.encode()).hexdigest()

    @staticmethod
    def _regular_file(path: Path) -> Path:
        try:
            mode = os.stat(path).st_mode
        except OSError as exc:
            raise BadRequestError(f"cannot read {path}: {exc.strerror or exc}", field="url") from None
        if not stat.S_ISREG(mode):
            raise BadRequestError(f"{path} is not a regular file", field="url")
        return path

    # -- the datasetio API ----------------------------------------------------------------------

    async def get_rows_paginated(self, dataset_id: str, rows_in_page: int, page_token: str | None = None,
                                 filter_condition: str | None = None) -> PaginatedRowsResult:
        _dataset, opened = await self.definitions.opened(dataset_id)
        return await read_page(
            [_FileSource(opened.file), self.appended.source(dataset_id)], rows_in_page=rows_in_page,
            page_token=page_token, filter_condition=filter_condition, columns=opened.columns,
            max_rows_in_page=self.config.max_rows_in_page)

    async def append_rows(self, dataset_id: str, rows: list[dict[str, Any]]) -> None:
        dataset, _opened = await self.definitions.opened(dataset_id)
        check_rows(rows, dataset.dataset_schema)
        if rows:
            await self.appended.append(dataset_id, rows)


def _write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + f".{os.getpid()}.part")
    partial.write_bytes(data)
    os.replace(partial, path)
