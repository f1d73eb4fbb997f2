"""Models: the registry of LLMs and embedding models and who serves them."""

from __future__ import annotations

from enum import Enum
from typing import Any, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

from ._resource import Resource
from ._webmethod import webmethod


class ModelType(str, Enum):
    llm = "llm"
    embedding = "embedding"


class Model(Resource):
    """A model registered with the stack.

    Lists also carry OpenAI's ``id``/``object``/``created``/``owned_by`` as
    extra fields, so that one ``GET /v1/models`` serves both kinds of client.
    """

    model_config = ConfigDict(extra="allow", protected_namespaces=())

    type: Literal["model"] = "model"
    metadata: dict[str, Any] = Field(default_factory=dict)
    model_type: ModelType = ModelType.llm

    @property
    def model_id(self) -> str:
        return self.identifier

    @property
    def provider_model_id(self) -> str:
        return self.provider_resource_id


class ListModelsResponse(BaseModel):
    model_config = ConfigDict(extra="allow")

    data: list[Model]


class ModelInput(BaseModel):
    """A model as listed under ``models:`` in a run config."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    model_id: str
    provider_id: str | None = None
    provider_model_id: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    model_type: ModelType = ModelType.llm


@runtime_checkable
class Models(Protocol):
    @webmethod(route="/v1/models", method="GET", aliases=("/v1/openai/v1/models",))
    async def list_models(self) -> ListModelsResponse: ...

    @webmethod(route="/v1/models/{model_id}", method="GET")
    async def get_model(self, model_id: str) -> Model: ...

    @webmethod(route="/v1/models", method="POST")
    async def register_model(
        self,
        model_id: str,
        provider_model_id: str | None = None,
        provider_id: str | None = None,
        metadata: dict[str, Any] | None = None,
        model_type: ModelType | None = None,
    ) -> Model: ...

    @webmethod(route="/v1/models/{model_id}", method="DELETE")
    async def unregister_model(self, model_id: str) -> None: ...


PROTOCOL = Models
