"""The ``inline::sentence-transformers`` inference provider: embeddings only.

``openai_embeddings`` does the work (the router serves the Llama Stack
``embeddings`` route from it). Chat and text completion answer 501.
"""

from __future__ import annotations

import asyncio
import base64
from typing import Any

from stack.apis.models import Model, ModelType
from stack.apis.openai import (
    OpenAIChatCompletionRequest,
    OpenAICompletionRequest,
    OpenAIEmbedding,
    OpenAIEmbeddingsRequest,
    OpenAIEmbeddingsResponse,
    OpenAIUsage,
)
from stack.errors import BadRequestError, NotSupportedError
from stack.registry import ProviderContext

from ._batcher import ModelWorker
from .config import SentenceTransformersConfig

PROVIDER_TYPE = "inline::sentence-transformers"


class SentenceTransformersInference:
    """Embeddings from sentence-transformers models, batched across concurrent requests."""

    #: OpenAI request fields this provider honours (``user`` is accepted and ignored)
    openai_params = frozenset({"model", "input", "encoding_format", "dimensions", "user"})

    def __init__(self, config: SentenceTransformersConfig, context: ProviderContext) -> None:
        self.config = config
        self.context = context
        self.workers = {
            model_id: ModelWorker(
                model_id,
                source,
                device=config.device,
                max_batch_size=config.max_batch_size,
                batch_wait_ms=config.batch_wait_ms,
            )
            for model_id, source in config.models.items()
        }

    def start(self) -> None:
        """Begin loading every model in its own thread; returns at once."""
        for worker in self.workers.values():
            worker.start()

    def after_start(self) -> None:
        """With ``load: background``, the stack has started: begin loading now."""
        if self.config.load == "background":
            self.start()

    async def shutdown(self) -> None:
        await asyncio.gather(*(worker.close() for worker in self.workers.values()))

    async def health(self) -> dict[str, str]:
        """Per model, as every local provider reports it: "not loaded",
        "loading", "ready", "error: ..." or "stopped"."""
        return {model_id: worker.state_text() for model_id, worker in self.workers.items()}

    def stats(self) -> dict[str, Any]:
        """Per model: device, dimension, load time and batching counters."""
        return {model_id: worker.health() for model_id, worker in self.workers.items()}

    # -- models --------------------------------------------------------------------

    async def register_model(self, model: Model) -> Model:
        if model.model_type != ModelType.embedding:
            raise BadRequestError(
                f"{PROVIDER_TYPE} serves embedding models only; {model.identifier!r} is registered as "
                f"{model.model_type.value}",
                field="model_type",
            )
        worker = self.workers.get(model.provider_resource_id)
        if worker is None:
            raise BadRequestError(
                f"{model.provider_resource_id!r} is not a model of provider {self.context.provider_id!r}; "
                f"its models: {', '.join(sorted(self.workers))} (add others under config.models)",
                field="provider_model_id",
            )
        declared = model.metadata.get("embedding_dimension")
        if worker.model is not None and declared is not None and declared != worker.model.dimension:
            raise BadRequestError(
                f"model {model.provider_resource_id!r} returns {worker.model.dimension} dimensions, not {declared!r}",
                field="metadata.embedding_dimension",
            )
        return model

    def _worker(self, model_id: str) -> ModelWorker:
        worker = self.workers.get(model_id)
        if worker is None:
            raise BadRequestError(
                f"{model_id!r} is not a model of provider {self.context.provider_id!r}; "
                f"its models: {', '.join(sorted(self.workers))}",
                field="model",
            )
        return worker

    # -- OpenAI-compatible ---------------------------------------------------------

    async def openai_embeddings(self, request: OpenAIEmbeddingsRequest) -> OpenAIEmbeddingsResponse:
        texts = _input_texts(request.input)
        worker = self._worker(request.model)
        model = await worker.ready()
        if request.dimensions is not None and request.dimensions != model.dimension:
            raise BadRequestError(
                f"model {request.model!r} returns {model.dimension} dimensions and cannot shorten them to "
                f"{request.dimensions}",
                field="dimensions",
            )
        vectors, tokens = await worker.embed(texts)
        if request.encoding_format == "base64":
            # little-endian float32, as OpenAI sends them
            embeddings = [base64.b64encode(row.astype("<f4").tobytes()).decode("ascii") for row in vectors]
        else:
            embeddings = vectors.tolist()
        prompt_tokens = int(tokens.sum())
        return OpenAIEmbeddingsResponse(
            data=[OpenAIEmbedding.model_construct(index=i, embedding=e) for i, e in enumerate(embeddings)],
            model=request.model,
            usage=OpenAIUsage(prompt_tokens=prompt_tokens, total_tokens=prompt_tokens),
        )

    async def openai_chat_completion(self, request: OpenAIChatCompletionRequest) -> Any:
        raise NotSupportedError(_embedding_only(request.model))

    async def openai_completion(self, request: OpenAICompletionRequest) -> Any:
        raise NotSupportedError(_embedding_only(request.model))


def _embedding_only(model_id: str) -> str:
    return f"model {model_id!r} is an embedding model: {PROVIDER_TYPE} serves embeddings only"


def _input_texts(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if not value:
        raise BadRequestError("must be a string or a non-empty list of strings", field="input")
    if all(isinstance(item, str) for item in value):
        return list(value)
    raise BadRequestError(
        "token ids are not supported by this provider; send text (a string or a list of strings)", field="input"
    )
