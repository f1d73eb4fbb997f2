"""Datasets: the registry of row collections that eval, scoring and training read."""

from __future__ import annotations

from typing import Any, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

from ._content import URL
from ._resource import Resource
from ._types import ParamType
from ._webmethod import webmethod


class Dataset(Resource):
    """A dataset registered with the stack; ``dataset_schema`` types its columns."""

    type: Literal["dataset"] = "dataset"
    dataset_schema: dict[str, ParamType]
    url: URL
    metadata: dict[str, Any]

    @property
    def dataset_id(self) -> str:
        return self.identifier

    @property
    def provider_dataset_id(self) -> str:
        return self.provider_resource_id


class ListDatasetsResponse(BaseModel):
    data: list[Dataset]


class DatasetInput(BaseModel):
    """A dataset as listed under ``datasets:`` in a run config."""

    model_config = ConfigDict(extra="forbid")

    dataset_id: str
    dataset_schema: dict[str, ParamType]
    url: URL
    metadata: dict[str, Any] = Field(default_factory=dict)
    provider_id: str | None = None
    provider_dataset_id: str | None = None


@runtime_checkable
class Datasets(Protocol):
    @webmethod(route="/v1/datasets", method="POST")
    async def register_dataset(
        self,
        dataset_id: str,
        dataset_schema: dict[str, ParamType],
        url: URL,
        provider_dataset_id: str | None = None,
        provider_id: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None: ...

    @webmethod(route="/v1/datasets/{dataset_id}", method="GET")
    async def get_dataset(self, dataset_id: str) -> Dataset | None: ...

    @webmethod(route="/v1/datasets", method="GET")
    async def list_datasets(self) -> ListDatasetsResponse: ...

    @webmethod(route="/v1/datasets/{dataset_id}", method="DELETE")
    async def unregister_dataset(self, dataset_id: str) -> None: ...


PROTOCOL = Datasets
