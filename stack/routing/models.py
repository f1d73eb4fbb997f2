"""The models routing table: serves the Models API."""

from __future__ import annotations

from typing import Any

from ..apis.models import ListModelsResponse, Model, ModelInput, ModelType
from ..errors import BadRequestError
from ._table import ResourceTable


# metadata the inference router reads: the model's context and what a request without max_tokens gets
_TOKEN_COUNTS = ("context_length", "default_max_tokens")


class ModelsRoutingTable(ResourceTable[Model]):
    kind = "model"
    resource_cls = Model

    def from_input(self, item: ModelInput) -> Model:
        return self._build(item.model_id, item.provider_model_id, item.provider_id, item.metadata, item.model_type)

    def _build(self, model_id, provider_model_id, provider_id, metadata, model_type) -> Model:
        model_type = model_type or ModelType.llm
        metadata = metadata or {}
        if model_type == ModelType.embedding and "embedding_dimension" not in metadata:
            raise BadRequestError("embedding models need an integer embedding_dimension", field="metadata.embedding_dimension")
        for name in _TOKEN_COUNTS:
            value = metadata.get(name)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
                raise BadRequestError(f"must be a positive integer (tokens), got {value!r}", field=f"metadata.{name}")
        return Model(
            identifier=model_id,
            provider_resource_id=provider_model_id or model_id,
            provider_id=self.pick_provider(provider_id),
            metadata=metadata,
            model_type=model_type,
        )

    async def list_models(self) -> ListModelsResponse:
        """Llama Stack's list, with OpenAI's fields on it (``object: "list"``;
        ``id``, ``object``, ``created``, ``owned_by`` per model)."""
        data = [
            Model(**m.model_dump(), id=m.identifier, object="model", created=self.created(m.identifier), owned_by=m.provider_id)
            for m in await self.list()
        ]
        return ListModelsResponse(object="list", data=data)

    async def get_model(self, model_id: str) -> Model:
        return await self.get(model_id)

    async def register_model(
        self,
        model_id: str,
        provider_model_id: str | None = None,
        provider_id: str | None = None,
        metadata: dict[str, Any] | None = None,
        model_type: ModelType | None = None,
    ) -> Model:
        return await self.register(self._build(model_id, provider_model_id, provider_id, metadata, model_type))

    async def unregister_model(self, model_id: str) -> None:
        await self.unregister(model_id)
