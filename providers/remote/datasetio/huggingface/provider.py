"""``remote::huggingface``: rows of Hugging Face datasets, read by position from
the Arrow files the ``datasets`` library memory-maps.

Where the dataset is, as llama-stack 0.1.0 named it: ``metadata.path`` (a Hub
repository, with ``name``, ``split`` and ``revision``), or the URL
``huggingface://datasets/<repo>?split=train&name=...`` or
``https://huggingface.co/datasets/<repo>``. A ``path`` (or ``file://`` URL)
that is a local directory is loaded with ``load_from_disk`` after the
fetcher's ``server.fetch.allow_dirs`` check; a Hub download first checks the
Hub's address against ``server.fetch``.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

from stack.apis.datasetio import PaginatedRowsResult
from stack.apis.datasets import Dataset
from stack.errors import BadRequestError, UpstreamError
from stack.registry import ProviderContext
from stack.storage import SqliteStoreConfig, sqlstore_from_config

from providers.utils.datasetio.paging import read_page
from providers.utils.datasetio.store import DatasetDefinitions

from .config import HuggingfaceDatasetIOConfig

#: metadata keys passed on to ``load_dataset`` (others are the caller's own notes)
LOAD_KEYS = ("name", "split", "revision")


@dataclass
class _Where:
    """Where a dataset is: a local directory or a Hub repository, and the field that named it."""

    path: str
    field: str
    local: bool
    options: dict[str, str]


def locate(dataset: Dataset) -> _Where:
    """Where ``dataset`` is, from its metadata or its URL."""
    metadata = dataset.metadata
    if metadata.get("path"):
        path = str(metadata["path"])
        options = {k: str(metadata[k]) for k in LOAD_KEYS if metadata.get(k) is not None}
        return _Where(path, "metadata.path", _is_local(path), options)
    uri = dataset.url.uri
    parts = urlsplit(uri)
    query = {k: v[-1] for k, v in parse_qs(parts.query).items() if k in LOAD_KEYS}
    if parts.scheme == "huggingface":
        repo = (parts.netloc + parts.path).removeprefix("datasets/").strip("/")
    elif parts.scheme in ("http", "https") and parts.path.startswith("/datasets/"):
        repo = parts.path.removeprefix("/datasets/").strip("/")
    elif _is_local(uri):
        return _Where(uri.split("?", 1)[0], "url", True, query)
    else:
        raise BadRequestError("expected huggingface://datasets/<repo>?split=..., https://huggingface.co/datasets/<repo>, "
                              "a local directory, or metadata.path", field="url")
    if not repo:
        raise BadRequestError("names no dataset repository", field="url")
    return _Where(repo, "url", False, query)


def _is_local(path: str) -> bool:
    return path.startswith("/") or path.lower().startswith("file:")


class _ArrowSource:
    """A ``datasets.Dataset`` as a paging RowSource, read in a thread."""

    def __init__(self, data: Any) -> None:
        self.data = data

    async def count(self) -> int:
        return len(self.data)

    async def read(self, start: int, stop: int) -> list[dict[str, Any]]:
        return await asyncio.to_thread(lambda: self.data.select(range(start, stop)).to_list())


class HuggingfaceDatasetIO:
    def __init__(self, config: HuggingfaceDatasetIOConfig, context: ProviderContext) -> None:
        self.config, self.context = config, context

    async def initialize(self) -> None:
        store = await sqlstore_from_config(self.config.kvstore or SqliteStoreConfig(),
                                           default_path=self.context.data_dir / "huggingface_datasetio.db")
        self.definitions = DatasetDefinitions(store, self._load)
        await self.definitions.initialize()

    async def shutdown(self) -> None:
        await self.definitions.store.close()

    async def register_dataset(self, dataset: Dataset) -> Dataset:
        """Load the dataset now: a bad location is a 400 naming ``url`` or ``metadata.path``."""
        await self.definitions.register(dataset)
        return dataset

    async def unregister_dataset(self, dataset: Dataset) -> None:
        await self.definitions.forget(dataset.provider_resource_id)

    async def _load(self, dataset: Dataset) -> Any:
        where = locate(dataset)
        if where.local:
            path = self.context.fetcher.local_path(where.path, field=where.field)
            data = await asyncio.to_thread(_load_from_disk, str(path), where.field)
        else:
            await self.context.fetcher.checked_addresses(f"{self.config.endpoint.rstrip('/')}/datasets/{where.path}",
                                                         field=where.field)
            data = await asyncio.to_thread(_load_from_hub, where.path, where.options, where.field)
        data = _pick_split(data, where.options.get("split"),
                           "metadata.split" if where.field.startswith("metadata") else where.field)
        missing = [c for c in dataset.dataset_schema if c not in data.column_names]
        if missing:
            raise BadRequestError(f"column {missing[0]!r} is not in the dataset (which has "
                                  f"{', '.join(data.column_names)})", field=f"dataset_schema.{missing[0]}")
        return data

    async def get_rows_paginated(self, dataset_id: str, rows_in_page: int, page_token: str | None = None,
                                 filter_condition: str | None = None) -> PaginatedRowsResult:
        _dataset, data = await self.definitions.opened(dataset_id)
        return await read_page([_ArrowSource(data)], rows_in_page=rows_in_page, page_token=page_token,
                               filter_condition=filter_condition, columns=data.column_names,
                               max_rows_in_page=self.config.max_rows_in_page)


def _load_from_disk(path: str, field: str) -> Any:
    import datasets

    try:
        return datasets.load_from_disk(path)
    except (FileNotFoundError, NotADirectoryError, ValueError, OSError) as exc:
        raise BadRequestError(f"not a dataset saved with save_to_disk: {exc}", field=field) from None


def _load_from_hub(repo: str, options: dict[str, str], field: str) -> Any:
    import datasets
    from datasets.exceptions import DatasetNotFoundError

    try:
        return datasets.load_dataset(repo, **options)
    except (DatasetNotFoundError, FileNotFoundError) as exc:
        raise BadRequestError(f"no Hugging Face dataset {repo!r}: {exc}", field=field) from None
    except ValueError as exc:  # e.g. an unknown split or config name
        raise BadRequestError(str(exc), field=field) from None
    except (ConnectionError, OSError) as exc:
        raise UpstreamError(f"{field}: loading {repo!r} from the Hugging Face Hub failed: {exc}") from None


def _pick_split(data: Any, split: str | None, field: str) -> Any:
    """One split of a DatasetDict: the one named, else the only one."""
    import datasets

    if not isinstance(data, datasets.DatasetDict):
        return data
    splits = list(data)
    if split is None and len(splits) == 1:
        return data[splits[0]]
    if split not in data:
        raise BadRequestError(f"name one of the splits {', '.join(splits)}" if split is None
                              else f"no split {split!r}; the dataset has {', '.join(splits)}", field=field)
    return data[split]
