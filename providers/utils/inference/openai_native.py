"""A base for providers that speak OpenAI natively: the Llama Stack inference
routes are served by converting to OpenAI requests and back."""

from __future__ import annotations

import collections.abc
from typing import Any

from pydantic import BaseModel, ValidationError

from stack.apis.inference import EmbeddingsResponse
from stack.apis.openai import OpenAIChatCompletionRequest, OpenAICompletionRequest, OpenAIEmbeddingsRequest, check_supported_fields
from stack.errors import bad_request_from


from . import llama_to_openai, openai_to_llama


class OpenAINativeInference:
    """Subclasses implement ``openai_chat_completion``, ``openai_completion`` and
    ``openai_embeddings`` (taking the request models of stack.apis.openai and
    returning the response model or, when streaming, an async iterator of chunks).
    """

    async def chat_completion(self, model_id: str, messages: list, tool_prompt_format: Any = None, **kwargs: Any) -> Any:
        # tool_prompt_format is ignored: OpenAI-native engines render tools
        # with the model's own template
        body = llama_to_openai.chat_request(model_id, messages, **kwargs)
        request = _with_default_mark(_converted(OpenAIChatCompletionRequest, body), kwargs)
        check_supported_fields(request, getattr(self, "openai_params", None))
        result = await self.openai_chat_completion(request)
        if isinstance(result, collections.abc.AsyncIterator):
            return openai_to_llama.chat_stream(result)
        return openai_to_llama.chat_response(result)

    async def completion(self, model_id: str, content: Any, **kwargs: Any) -> Any:
        body = llama_to_openai.completion_request(model_id, content, **kwargs)
        request = _with_default_mark(_converted(OpenAICompletionRequest, body), kwargs)
        check_supported_fields(request, getattr(self, "openai_params", None))
        result = await self.openai_completion(request)
        if isinstance(result, collections.abc.AsyncIterator):
            return openai_to_llama.completion_stream(result)
        return openai_to_llama.completion_response(result)

    async def embeddings(self, model_id: str, contents: list) -> EmbeddingsResponse:
        texts = [llama_to_openai.content_text(c) for c in contents]
        response = await self.openai_embeddings(_converted(OpenAIEmbeddingsRequest, {"model": model_id, "input": texts}))
        ordered = sorted(response.data, key=lambda d: d.index)
        return EmbeddingsResponse(embeddings=[d.embedding for d in ordered])


def _with_default_mark(request: Any, kwargs: dict[str, Any]) -> Any:
    """``request``, marked when its max_tokens is the router's default (see stack.routing.limits)."""
    request._max_tokens_is_default = getattr(kwargs.get("sampling_params"), "_max_tokens_is_default", False)
    return request


def _converted(cls: type[BaseModel], body: dict) -> Any:
    """A converted Llama Stack request as ``cls``; what the Llama Stack model
    allows and ``cls`` does not (``messages: []``) is a 400 naming the field."""
    try:
        return cls.model_validate(body)
    except ValidationError as exc:
        raise bad_request_from(exc) from None
