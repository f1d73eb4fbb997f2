"""remote::bedrock inference: chat through Converse / ConverseStream, completions through
InvokeModel with the Meta Llama request body, embeddings through InvokeModel with the Titan
Text Embeddings body (the model families Bedrock serves for each)."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any, ClassVar

from providers.utils.bedrock.client import BedrockClients
from providers.utils.inference.embedding_encoding import float32_base64
from providers.utils.inference.model_aliases import AliasTable
from stack.apis.models import Model
from stack.apis.openai import (
    OpenAIChatCompletionRequest,
    OpenAICompletion,
    OpenAICompletionChoice,
    OpenAICompletionRequest,
    OpenAIEmbedding,
    OpenAIEmbeddingsRequest,
    OpenAIEmbeddingsResponse,
    OpenAIUsage,
)
from stack.errors import BadRequestError, UpstreamError

from ._converse import CHAT_PARAMS, ChunkMaker, chat_response, converse_request

#: Meta Llama's native body on Bedrock takes these, and no stop sequences
COMPLETION_PARAMS = frozenset({"model", "prompt", "max_tokens", "temperature", "top_p", "stream", "stream_options"})
EMBEDDING_PARAMS = frozenset({"model", "input", "encoding_format", "dimensions"})
_LLAMA_FINISH = {"stop": "stop", "length": "length"}


class BedrockInference:
    """Models are Bedrock model ids (``provider_model_id``), or Llama ids its aliases name."""

    openai_params: ClassVar[dict[str, frozenset[str]]] = {"openai_chat_completion": CHAT_PARAMS, "openai_completion": COMPLETION_PARAMS,
                     "openai_embeddings": EMBEDDING_PARAMS}

    def __init__(self, clients: BedrockClients, aliases: AliasTable) -> None:
        self.clients = clients
        self.aliases = aliases

    async def initialize(self) -> None:
        await self.clients.initialize()

    async def shutdown(self) -> None:
        return None

    async def health(self) -> dict[str, Any]:
        """Where requests go; Bedrock's runtime API has no cheap call to probe it with."""
        return {"status": "configured", "region": self.clients.region, "endpoint": self.clients.endpoint}

    async def register_model(self, model: Model) -> Model:
        alias = self.aliases.get(model.provider_resource_id)
        if alias is not None:
            return model.model_copy(update={"provider_resource_id": alias.preferred})
        return model

    # -- chat -------------------------------------------------------------------------------

    async def openai_chat_completion(self, request: OpenAIChatCompletionRequest) -> Any:
        kwargs = converse_request(request, request.max_completion_tokens or request.max_tokens)
        what = f"model {request.model!r}"
        if request.stream:
            events = await self.clients.stream("converse_stream", what, **kwargs)
            include_usage = bool(request.stream_options and request.stream_options.include_usage)
            return self._chat_chunks(events, ChunkMaker(request.model, include_usage), what)
        data = await self.clients.call("converse", what, **kwargs)
        return chat_response(data, request.model, f"Converse ({what})")

    async def _chat_chunks(self, events: AsyncIterator[dict[str, Any]], maker: ChunkMaker, what: str) -> Any:
        try:
            async for event in events:
                chunk = maker.chunk(event)
                if chunk is not None:
                    yield chunk
        finally:
            await events.aclose()
        if not maker.finished:
            raise UpstreamError(f"the ConverseStream of Bedrock ({what}) ended before messageStop")

    # -- completion -------------------------------------------------------------------------

    async def openai_completion(self, request: OpenAICompletionRequest) -> Any:
        prompt = request.prompt
        if isinstance(prompt, list):
            if len(prompt) != 1 or not isinstance(prompt[0], str):
                raise BadRequestError("Bedrock completes one text prompt per request", field="prompt")
            prompt = prompt[0]
        body: dict[str, Any] = {"prompt": prompt, "max_gen_len": request.max_tokens}
        if request.temperature is not None:
            body["temperature"] = request.temperature
        if request.top_p is not None:
            body["top_p"] = request.top_p
        kwargs = {"modelId": request.model, "body": json.dumps(body), "contentType": "application/json",
                  "accept": "application/json"}
        what = f"model {request.model!r}"
        if request.stream:
            events = await self.clients.stream("invoke_model_with_response_stream", what, key="body", **kwargs)
            include_usage = bool(request.stream_options and request.stream_options.include_usage)
            return self._completion_chunks(events, request.model, include_usage, what)
        data = _json(((await self.clients.call("invoke_model", what, **kwargs))["body"]), f"InvokeModel ({what})")
        return OpenAICompletion(
            id=f"cmpl-{uuid.uuid4().hex}", created=int(time.time()), model=request.model, usage=_llama_usage(data),
            choices=[OpenAICompletionChoice(index=0, text=str(data.get("generation", "")),
                                            finish_reason=_LLAMA_FINISH.get(data.get("stop_reason"), "stop"))])

    async def _completion_chunks(self, events: AsyncIterator[dict[str, Any]], model: str, include_usage: bool,
                                 what: str) -> Any:
        cid, created, finished = f"cmpl-{uuid.uuid4().hex}", int(time.time()), False
        try:
            async for event in events:
                if "chunk" not in event:
                    continue
                data = _json(event["chunk"].get("bytes", b""), f"InvokeModelWithResponseStream ({what})")
                reason = data.get("stop_reason")
                finished = finished or reason is not None
                metrics = data.get("amazon-bedrock-invocationMetrics")
                yield OpenAICompletion(
                    id=cid, created=created, model=model,
                    usage=_metrics_usage(metrics) if include_usage and metrics else None,
                    choices=[OpenAICompletionChoice(index=0, text=str(data.get("generation") or ""),
                                                    finish_reason=_LLAMA_FINISH.get(reason, "stop") if reason else None)])
        finally:
            await events.aclose()
        if not finished:
            raise UpstreamError(f"the InvokeModelWithResponseStream of Bedrock ({what}) ended without a stop_reason")

    # -- embeddings -------------------------------------------------------------------------

    async def openai_embeddings(self, request: OpenAIEmbeddingsRequest) -> OpenAIEmbeddingsResponse:
        texts = [request.input] if isinstance(request.input, str) else request.input
        if not texts or not all(isinstance(t, str) for t in texts):
            raise BadRequestError("Bedrock embeds text, one or more strings", field="input")
        what = f"model {request.model!r}"
        answers = await asyncio.gather(*(self._embed(request, text, what) for text in texts))
        as_base64 = request.encoding_format == "base64"
        tokens = sum(int(a.get("inputTextTokenCount") or 0) for a in answers)
        return OpenAIEmbeddingsResponse(
            model=request.model, usage=OpenAIUsage(prompt_tokens=tokens, completion_tokens=None, total_tokens=tokens),
            data=[OpenAIEmbedding(index=i, embedding=float32_base64(a["embedding"]) if as_base64 else a["embedding"])
                  for i, a in enumerate(answers)])

    async def _embed(self, request: OpenAIEmbeddingsRequest, text: str, what: str) -> dict[str, Any]:
        body: dict[str, Any] = {"inputText": text}
        if request.dimensions is not None:
            body["dimensions"] = request.dimensions
        answer = await self.clients.call("invoke_model", what, modelId=request.model, body=json.dumps(body),
                                         contentType="application/json", accept="application/json")
        data = _json(answer["body"], f"InvokeModel ({what})")
        if not isinstance(data.get("embedding"), list):
            raise UpstreamError(f"Bedrock InvokeModel ({what}) answered without 'embedding': {str(data)[:200]}")
        return data


def _json(raw: bytes, where: str) -> dict[str, Any]:
    try:
        data = json.loads(raw)
    except ValueError:
        raise UpstreamError(f"Bedrock {where} sent a body that is not JSON: {raw[:200]!r}") from None
    if not isinstance(data, dict):
        raise UpstreamError(f"Bedrock {where} sent an unexpected answer: {raw[:200]!r}")
    return data


def _llama_usage(data: dict[str, Any]) -> OpenAIUsage:
    prompt, completion = int(data.get("prompt_token_count") or 0), int(data.get("generation_token_count") or 0)
    return OpenAIUsage(prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion)


def _metrics_usage(metrics: dict[str, Any]) -> OpenAIUsage:
    prompt, completion = int(metrics.get("inputTokenCount") or 0), int(metrics.get("outputTokenCount") or 0)
    return OpenAIUsage(prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion)

