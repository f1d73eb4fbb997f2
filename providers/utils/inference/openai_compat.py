"""The adapter for any OpenAI-compatible upstream (OpenAI, vLLM, llama.cpp, Together...).

The OpenAI-compatible routes are a near pass-through: the request (its model
already mapped by the router) goes out as sent, vLLM extras included, and the
upstream's JSON comes back validated into the response models. Streams are
parsed line by line as they arrive. The inference router serves the Llama
Stack routes by converting to these requests and back.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from providers.utils.http import HTTPSettings, UpstreamClient, upstream_message
from stack.apis.openai import (
    OpenAIChatCompletion,
    OpenAIChatCompletionChunk,
    OpenAIChatCompletionRequest,
    OpenAICompletion,
    OpenAICompletionRequest,
    OpenAIEmbeddingsRequest,
    OpenAIEmbeddingsResponse,
)
from stack.errors import UpstreamError
from stack.registry import ProviderContext

M = TypeVar("M", bound=BaseModel)

_HEALTH_TTL = 10.0
_HEALTH_TIMEOUT = 0.5


class OpenAICompatInference:
    """Inference through an OpenAI-compatible HTTP API.

    ``api_key`` is the configured key; ``provider_data_key`` names the field of
    X-LlamaStack-Provider-Data that overrides it for one request.
    """

    #: every field reaches the upstream (None: the router checks nothing)
    openai_params: frozenset[str] | None = None

    def __init__(self, *, url: str, settings: HTTPSettings, context: ProviderContext,
                 api_key: str | None = None, provider_data_key: str | None = None,
                 default_max_tokens: int | None = None) -> None:
        self.context = context
        self.provider_type = context.spec.provider_type
        self.provider_data_key = provider_data_key
        self._default_max_tokens = default_max_tokens
        headers = {"Content-Type": "application/json"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        self.client = UpstreamClient(url, settings, name=f"{self.provider_type} ({context.provider_id})", headers=headers)

    @property
    def url(self) -> str:
        return self.client.base_url

    async def initialize(self) -> None:
        await self.client.start()

    async def shutdown(self) -> None:
        await self.client.close()

    async def health(self) -> dict[str, Any]:
        """Whether the upstream answers (GET /models, cached for 10 s); never raises."""
        return await self.client.cached_probe("/models", _HEALTH_TIMEOUT, _HEALTH_TTL)

    # -- the OpenAI-compatible routes -----------------------------------------------------

    def _headers(self) -> dict[str, str] | None:
        """Per-request headers: the key from X-LlamaStack-Provider-Data, when sent."""
        if self.provider_data_key is None:
            return None
        data = self.context.provider_data()
        key = getattr(data, self.provider_data_key, None) if data is not None else None
        return {"Authorization": f"Bearer {key}"} if key else None

    def default_max_tokens(self, model_id: str) -> int | None:
        """The configured ``max_tokens`` of requests that set none, for the router (which cuts it to the context)."""
        return self._default_max_tokens

    def _body(self, request: BaseModel) -> bytes:
        return request.model_dump_json(exclude_unset=True).encode()

    async def openai_chat_completion(
        self, request: OpenAIChatCompletionRequest
    ) -> OpenAIChatCompletion | AsyncIterator[OpenAIChatCompletionChunk]:
        if self._default_max_tokens and request.max_tokens is None and request.max_completion_tokens is None:
            request = request.model_copy(update={"max_tokens": self._default_max_tokens})
        return await self._call("/chat/completions", request, OpenAIChatCompletion, OpenAIChatCompletionChunk)

    async def openai_completion(self, request: OpenAICompletionRequest) -> OpenAICompletion | AsyncIterator[OpenAICompletion]:
        if self._default_max_tokens and "max_tokens" not in request.model_fields_set:
            request = request.model_copy(update={"max_tokens": self._default_max_tokens})
        return await self._call("/completions", request, OpenAICompletion, OpenAICompletion)

    async def openai_embeddings(self, request: OpenAIEmbeddingsRequest) -> OpenAIEmbeddingsResponse:
        return await self._call("/embeddings", request, OpenAIEmbeddingsResponse, None)

    async def _call(self, path: str, request: Any, response_cls: type[M], chunk_cls: type[BaseModel] | None) -> Any:
        what = f"model {request.model!r}"
        body = self._body(request)
        if chunk_cls is not None and getattr(request, "stream", False):
            response = await self.client.send("POST", path, body, headers=self._headers(), what=what)
            return self._chunks(response, chunk_cls, request.model, what)
        raw = await self.client.request_bytes("POST", path, body, headers=self._headers(), what=what)
        where = f"{self.url}{path} ({what})"
        return checked_answer(parse_response(response_cls, raw, request.model, where), request, where)

    async def _chunks(self, response: Any, chunk_cls: type[M], model: str, what: str) -> AsyncIterator[M]:
        """The chunks of an upstream SSE stream, as they arrive."""
        where = f"{response.url} ({what})"
        finished = False
        lines = self.client.iter_lines(response, what=what)
        try:
            async for line in lines:
                if not line.startswith(b"data:"):
                    continue  # blank separators, comments, event names
                data = line[5:].lstrip()
                if data == b"[DONE]":
                    await drain(lines)
                    return
                chunk = parse_response(chunk_cls, data, model, where)
                if not finished:
                    finished = any(getattr(c, "finish_reason", None) for c in chunk.choices)
                yield chunk
        finally:
            await lines.aclose()
        if not finished:
            raise UpstreamError(f"the stream from upstream {where} ended before it was complete (no [DONE])")


def checked_answer(answer: M, request: Any, where: str) -> M:
    """``answer`` when it answers ``request``: a completion with a choice, an embedding per input.

    Either may parse and still be no answer (an empty ``choices``, fewer
    vectors than texts); passed on, it would fail later in a route, or pair
    texts with the wrong vectors in a vector store.
    """
    if isinstance(answer, OpenAIEmbeddingsResponse):
        texts = request.input
        wanted = len(texts) if isinstance(texts, list) and not (texts and isinstance(texts[0], int)) else 1
        if len(answer.data) != wanted or sorted(d.index for d in answer.data) != list(range(wanted)):
            raise UpstreamError(f"upstream {where} sent {len(answer.data)} embeddings "
                                f"(indexes {sorted(d.index for d in answer.data)[:10]}) for {wanted} inputs")
    elif not answer.choices:
        raise UpstreamError(f"upstream {where} sent a {type(answer).__name__} without choices")
    return answer


async def drain(lines: AsyncIterator[bytes], timeout: float = 1.0) -> None:
    """Read what follows the end marker so the connection can go back to the pool."""
    # on a timeout or an upstream error, iter_lines has closed the connection instead
    with contextlib.suppress(TimeoutError, UpstreamError):
        async with asyncio.timeout(timeout):
            async for _ in lines:
                pass


def parse_response(cls: type[M], raw: bytes, model: str, where: str) -> M:
    """``raw`` validated as ``cls``; an error payload or a malformed body is an UpstreamError.

    Fields that some OpenAI-compatible servers leave out (id, created, usage...)
    get neutral values instead of failing the request.
    """
    try:
        return cls.model_validate_json(raw)
    except ValidationError as first:
        return _lenient(cls, raw, model, where, first)


def _lenient(cls: type[M], raw: bytes, model: str, where: str, first: ValidationError) -> M:
    """``raw`` as ``cls`` with the fields some servers leave out filled in, or the UpstreamError saying why not."""
    try:
        data = json.loads(raw)
    except ValueError:
        raise UpstreamError(f"upstream {where} sent a body that is not JSON: {raw[:200]!r}") from None
    if isinstance(data, dict) and "error" in data:
        raise UpstreamError(f"upstream {where} reported an error: {upstream_message(raw)}") from None
    if isinstance(data, dict):
        data.setdefault("id", "")
        data.setdefault("created", int(time.time()))
        data.setdefault("model", model)
        if cls is OpenAIChatCompletion or cls is OpenAIEmbeddingsResponse:
            data.setdefault("usage", {})
        try:
            return cls.model_validate(data)
        except ValidationError as second:
            first = second
    err = first.errors()[0]
    loc = ".".join(str(p) for p in err["loc"])
    raise UpstreamError(f"upstream {where} sent an unexpected {cls.__name__}: {loc}: {err['msg']}") from None
