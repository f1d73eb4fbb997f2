"""Appending rows that a provider exports (logged trajectories, prompt logs) to a dataset of the stack."""

from __future__ import annotations

from typing import Any

from stack.apis._content import URL
from stack.errors import BadRequestError, NotFoundError

#: what a new export dataset is registered with: an empty JSONL file, so that any datasetio provider
#: that reads URLs (localfs) opens it, and the exported rows are its appended rows
EMPTY_JSONL = "data:application/jsonl,"


async def export_to_dataset(deps: dict[str, Any], dataset_id: str, schema: dict[str, Any], rows: list[dict[str, Any]],
                            metadata: dict[str, Any], provider_id: str | None = None) -> None:
    """Append ``rows`` to ``dataset_id`` through datasetio, registering it (``schema``, ``metadata``) when new."""
    datasets, datasetio = deps.get("datasets"), deps.get("datasetio")
    if datasets is None or datasetio is None:
        raise BadRequestError("this stack serves no datasetio API to export to", field="dataset_id")
    try:
        await datasets.get_dataset(dataset_id)
    except NotFoundError:
        await datasets.register_dataset(dataset_id=dataset_id, dataset_schema=schema, url=URL(uri=EMPTY_JSONL),
                                        provider_id=provider_id, metadata=metadata)
    if rows:
        await datasetio.append_rows(dataset_id=dataset_id, rows=rows)
