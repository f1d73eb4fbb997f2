"""Ollama's native API behind the OpenAI-compatible and Llama Stack routes.

OpenAI requests become /api/chat, /api/generate and /api/embed requests
(sampling settings go under ``options``); Ollama's answers and its NDJSON
streams become OpenAI responses and chunks. The router serves the Llama
Stack routes by converting to the OpenAI requests first, so both families
share one code path.
"""

from __future__ import annotations

import contextlib
import json
import struct
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any, ClassVar

from providers.utils.http import HTTPSettings, UpstreamClient, upstream_message
from providers.utils.inference.embedding_encoding import float32_base64
from providers.utils.inference.openai_compat import checked_answer, drain
from stack.apis.models import Model
from stack.apis.openai import (
    OpenAIChatChoice,
    OpenAIChatChunkChoice,
    OpenAIChatCompletion,
    OpenAIChatCompletionChunk,
    OpenAIChatCompletionRequest,
    OpenAIChatDelta,
    OpenAIChatMessage,
    OpenAICompletion,
    OpenAICompletionChoice,
    OpenAICompletionRequest,
    OpenAIEmbedding,
    OpenAIEmbeddingsRequest,
    OpenAIEmbeddingsResponse,
    OpenAIFunctionCall,
    OpenAIToolCall,
    OpenAIUsage,
)
from stack.errors import BadRequestError, UpstreamError

from ._models import resolve_model

# request fields -> Ollama options
_OPTIONS = {
    "temperature": "temperature",
    "top_p": "top_p",
    "top_k": "top_k",
    "min_p": "min_p",
    "seed": "seed",
    "presence_penalty": "presence_penalty",
    "frequency_penalty": "frequency_penalty",
    "repetition_penalty": "repeat_penalty",
}
# Ollama's own fields, accepted as extras of the OpenAI requests
_OLLAMA_EXTRAS = frozenset({"options", "keep_alive", "think", "format", "truncate", "raw"})
_SAMPLING = frozenset(_OPTIONS) | {"max_tokens", "stop", "stream", "stream_options", "response_format", "user", "model"}

CHAT_PARAMS = _SAMPLING | _OLLAMA_EXTRAS | {"messages", "max_completion_tokens", "tools", "tool_choice", "parallel_tool_calls"}
COMPLETION_PARAMS = _SAMPLING | _OLLAMA_EXTRAS | {"prompt", "suffix"}
EMBEDDING_PARAMS = _OLLAMA_EXTRAS | {"model", "input", "encoding_format", "dimensions", "user"}

_FINISH = {"stop": "stop", "length": "length"}


class OllamaInference:
    """Inference on an Ollama server; model names are Ollama's (``provider_model_id``),
    or Llama model ids that ``register_model`` turns into Ollama tags."""

    #: the request fields each operation honours (the router checks them)
    openai_params: ClassVar[dict[str, frozenset[str]]] = {"openai_chat_completion": CHAT_PARAMS, "openai_completion": COMPLETION_PARAMS,
                     "openai_embeddings": EMBEDDING_PARAMS}

    def __init__(self, config: Any, context: Any) -> None:
        self.config = config
        self.context = context
        self.client = UpstreamClient(
            config.url, HTTPSettings.from_config(config),
            name=f"remote::ollama ({context.provider_id})", headers={"Content-Type": "application/json"},
        )

    @property
    def url(self) -> str:
        return self.client.base_url

    async def initialize(self) -> None:
        await self.client.start()

    async def shutdown(self) -> None:
        await self.client.close()

    async def health(self) -> dict[str, Any]:
        """Whether Ollama answers GET /api/version (cached for 10 s); never raises."""
        return await self.client.cached_probe("/api/version", 0.5)

    async def register_model(self, model: Model) -> Model:
        return await resolve_model(self.client, model)

    # -- chat ---------------------------------------------------------------------------

    async def openai_chat_completion(self, request: OpenAIChatCompletionRequest) -> Any:
        body = chat_body(request)
        what = f"model {request.model!r}"
        if request.stream:
            response = await self.client.send("POST", "/api/chat", _dumps(body), what=what)
            return self._chat_chunks(response, request, what)
        raw = await self.client.request_bytes("POST", "/api/chat", _dumps(body), what=what)
        where = f"{self.url}/api/chat ({what})"
        with _shaped(where, raw):
            return chat_response(_loads(raw, where, "message"), request.model)

    async def _chat_chunks(self, response: Any, request: OpenAIChatCompletionRequest, what: str) -> AsyncIterator[OpenAIChatCompletionChunk]:
        where = f"{self.url}/api/chat ({what})"
        cid, created, model = f"chatcmpl-{uuid.uuid4().hex}", int(time.time()), request.model
        include_usage = bool(request.stream_options and request.stream_options.include_usage)
        first, tool_calls = True, 0
        lines = self.client.iter_lines(response, what=what)
        try:
            async for line in lines:
                if not line.strip():
                    continue
                data = _loads(line, where, "message")
                with _shaped(where, line):
                    message = data.get("message") or {}
                    delta: dict[str, Any] = {"role": "assistant"} if first else {}
                    first = False
                    if message.get("content"):
                        delta["content"] = message["content"]
                    if message.get("thinking"):
                        delta["reasoning_content"] = message["thinking"]
                    if message.get("tool_calls"):
                        delta["tool_calls"] = [
                            {"index": tool_calls + i, "id": _call_id(), "type": "function",
                             "function": {"name": c["function"]["name"], "arguments": _arguments(c["function"].get("arguments"))}}
                            for i, c in enumerate(message["tool_calls"])
                        ]
                        tool_calls += len(message["tool_calls"])
                    done = data.get("done", False)
                    finish = ("tool_calls" if tool_calls else _FINISH.get(data.get("done_reason"), "stop")) if done else None
                    chunks = [OpenAIChatCompletionChunk(id=cid, created=created, model=model, choices=[
                        OpenAIChatChunkChoice(index=0, delta=OpenAIChatDelta(**delta), finish_reason=finish)
                    ])] if delta or finish else []
                    if done and include_usage:
                        chunks.append(OpenAIChatCompletionChunk(id=cid, created=created, model=model, choices=[],
                                                                usage=_usage(data)))
                for chunk in chunks:
                    yield chunk
                if done:
                    await drain(lines)
                    return
        finally:
            await lines.aclose()
        raise UpstreamError(f"the stream from upstream {where} ended before it was done")

    # -- completion ---------------------------------------------------------------------

    async def openai_completion(self, request: OpenAICompletionRequest) -> Any:
        body = completion_body(request)
        what = f"model {request.model!r}"
        if request.stream:
            response = await self.client.send("POST", "/api/generate", _dumps(body), what=what)
            return self._completion_chunks(response, request, what)
        raw = await self.client.request_bytes("POST", "/api/generate", _dumps(body), what=what)
        where = f"{self.url}/api/generate ({what})"
        data = _loads(raw, where, "response")
        with _shaped(where, raw):
            return OpenAICompletion(
                id=f"cmpl-{uuid.uuid4().hex}", created=int(time.time()), model=request.model, usage=_usage(data),
                choices=[OpenAICompletionChoice(index=0, text=data.get("response", ""),
                                                finish_reason=_FINISH.get(data.get("done_reason"), "stop"))],
            )

    async def _completion_chunks(self, response: Any, request: OpenAICompletionRequest, what: str) -> AsyncIterator[OpenAICompletion]:
        where = f"{self.url}/api/generate ({what})"
        cid, created, model = f"cmpl-{uuid.uuid4().hex}", int(time.time()), request.model
        include_usage = bool(request.stream_options and request.stream_options.include_usage)
        lines = self.client.iter_lines(response, what=what)
        try:
            async for line in lines:
                if not line.strip():
                    continue
                data = _loads(line, where, "response")
                done = data.get("done", False)
                finish = _FINISH.get(data.get("done_reason"), "stop") if done else None
                with _shaped(where, line):
                    chunk = OpenAICompletion(
                        id=cid, created=created, model=model, usage=_usage(data) if done and include_usage else None,
                        choices=[OpenAICompletionChoice(index=0, text=data.get("response", ""), finish_reason=finish)],
                    )
                yield chunk
                if done:
                    await drain(lines)
                    return
        finally:
            await lines.aclose()
        raise UpstreamError(f"the stream from upstream {where} ended before it was done")

    # -- embeddings ---------------------------------------------------------------------

    async def openai_embeddings(self, request: OpenAIEmbeddingsRequest) -> OpenAIEmbeddingsResponse:
        texts = request.input
        if isinstance(texts, list) and texts and not isinstance(texts[0], str):
            raise BadRequestError("Ollama embeds text, not token ids", field="input")
        body: dict[str, Any] = {"model": request.model, "input": texts}
        if request.dimensions is not None:
            body["dimensions"] = request.dimensions
        body.update(_extras(request, ("truncate", "keep_alive", "options")))
        what = f"model {request.model!r}"
        raw = await self.client.request_bytes("POST", "/api/embed", _dumps(body), what=what)
        data = _loads(raw, f"{self.url}/api/embed ({what})")
        vectors = data.get("embeddings")
        if not isinstance(vectors, list):
            raise UpstreamError(f"upstream {self.url}/api/embed ({what}) answered without 'embeddings'")
        as_base64 = request.encoding_format == "base64"
        with _shaped(f"{self.url}/api/embed ({what})", raw):
            tokens = int(data.get("prompt_eval_count") or 0)
            answer = OpenAIEmbeddingsResponse(
                model=request.model,
                data=[OpenAIEmbedding(index=i, embedding=float32_base64(v) if as_base64 else v) for i, v in enumerate(vectors)],
                usage=OpenAIUsage(prompt_tokens=tokens, completion_tokens=None, total_tokens=tokens),
            )
        return checked_answer(answer, request, f"{self.url}/api/embed ({what})")


# -- request conversion --------------------------------------------------------------------


def _extras(request: Any, names: tuple[str, ...]) -> dict[str, Any]:
    extra = request.model_extra or {}
    return {n: extra[n] for n in names if extra.get(n) is not None}


def _options(request: Any, max_tokens: int | None) -> dict[str, Any]:
    sent = request.model_fields_set
    options = {dst: getattr(request, src) for src, dst in _OPTIONS.items()
               if src in sent and getattr(request, src) is not None}
    if max_tokens is not None:
        options["num_predict"] = max_tokens
    stop = request.stop
    if stop:
        options["stop"] = [stop] if isinstance(stop, str) else list(stop)
    options.update((request.model_extra or {}).get("options") or {})  # Ollama's own options win
    return options


def _format(request: Any) -> Any:
    extra = request.model_extra or {}
    if extra.get("format") is not None:
        return extra["format"]
    fmt = request.response_format
    if fmt is None or fmt.type == "text":
        return None
    if fmt.type == "json_object":
        return "json"
    if fmt.type == "json_schema":
        schema = fmt.json_schema or {}
        return schema.get("schema", schema)
    raise BadRequestError(f"Ollama does not support response_format type {fmt.type!r}", field="response_format.type")


def _text_and_images(content: Any, where: str) -> tuple[str, list[str]]:
    if content is None:
        return "", []
    if isinstance(content, str):
        return content, []
    texts, images = [], []
    for part in content:
        kind = part.get("type")
        if kind == "text":
            texts.append(part.get("text", ""))
        elif kind == "image_url":
            url = (part.get("image_url") or {}).get("url", "")
            if not url.startswith("data:") or "," not in url:
                raise BadRequestError("Ollama takes images inline, as data: URLs", field=f"{where}.content")
            images.append(url.split(",", 1)[1])
        else:
            raise BadRequestError(f"content part type {kind!r} is not supported by Ollama", field=f"{where}.content")
    return "".join(texts), images


def _message(message: Any, i: int) -> dict[str, Any]:
    role = {"developer": "system", "function": "tool"}.get(message.role, message.role)
    text, images = _text_and_images(message.content, f"messages[{i}]")
    out: dict[str, Any] = {"role": role, "content": text}
    if images:
        out["images"] = images
    if message.role == "assistant" and message.tool_calls:
        out["tool_calls"] = [
            {"function": {"name": c.function.name, "arguments": _parse_arguments(c.function.arguments, i)}}
            for c in message.tool_calls
        ]
    return out


def _parse_arguments(arguments: str, i: int) -> Any:
    try:
        return json.loads(arguments or "{}")
    except ValueError:
        raise BadRequestError("tool call arguments must be JSON", field=f"messages[{i}].tool_calls") from None


def chat_body(request: OpenAIChatCompletionRequest) -> dict[str, Any]:
    """The /api/chat request for an OpenAI chat request."""
    body: dict[str, Any] = {
        "model": request.model,
        "messages": [_message(m, i) for i, m in enumerate(request.messages)],
        "stream": bool(request.stream),
    }
    choice = request.tool_choice
    if request.tools and choice != "none":
        if choice not in (None, "auto"):
            raise BadRequestError("Ollama lets the model choose; only 'auto' and 'none' are supported", field="tool_choice")
        body["tools"] = [t.model_dump(exclude_none=True) for t in request.tools]
    options = _options(request, request.max_completion_tokens or request.max_tokens)
    if options:
        body["options"] = options
    fmt = _format(request)
    if fmt is not None:
        body["format"] = fmt
    body.update(_extras(request, ("keep_alive", "think")))
    return body


def completion_body(request: OpenAICompletionRequest) -> dict[str, Any]:
    """The /api/generate request for an OpenAI (legacy) completion request."""
    prompt = request.prompt
    if isinstance(prompt, list):
        if len(prompt) != 1 or not isinstance(prompt[0], str):
            raise BadRequestError("Ollama completes one text prompt per request", field="prompt")
        prompt = prompt[0]
    body: dict[str, Any] = {"model": request.model, "prompt": prompt, "stream": bool(request.stream)}
    max_tokens = request.max_tokens if "max_tokens" in request.model_fields_set else None
    options = _options(request, max_tokens)
    if options:
        body["options"] = options
    if request.suffix:
        body["suffix"] = request.suffix
    fmt = _format(request)
    if fmt is not None:
        body["format"] = fmt
    body.update(_extras(request, ("keep_alive", "raw", "think")))
    return body


# -- response conversion -------------------------------------------------------------------


def _dumps(body: dict[str, Any]) -> bytes:
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


def _loads(raw: bytes, where: str, part: str | None = None) -> dict[str, Any]:
    """``raw`` as an Ollama answer; with ``part`` ('message' of /api/chat, 'response' of
    /api/generate), one whose ``part`` and ``done`` have Ollama's types.

    A proxy's error page or a server that is not Ollama must be a 502, never an
    empty answer or a stream taken as finished because ``done`` was some string.
    """
    try:
        data = json.loads(raw)
    except ValueError:
        raise UpstreamError(f"upstream {where} sent something that is not JSON: {raw[:200]!r}") from None
    if not isinstance(data, dict):
        raise UpstreamError(f"upstream {where} sent an unexpected answer: {raw[:200]!r}")
    if "error" in data:
        raise UpstreamError(f"upstream {where} reported an error: {upstream_message(raw)}")
    if part is not None:
        done, value = data.get("done", False), data.get(part)
        if part == "message":
            fits = isinstance(value, dict) and isinstance(value.get("content") or "", str)
        else:
            fits = isinstance(value, str)
        if not isinstance(done, bool) or not (fits or (value is None and done)):
            raise UpstreamError(f"upstream {where} sent an answer that is not Ollama's "
                                f"(a {part!r} and a boolean 'done' expected): {raw[:200]!r}")
    return data


@contextlib.contextmanager
def _shaped(where: str, raw: bytes) -> Iterator[None]:
    """Converting an answer of Ollama's: a field of the wrong type or missing is the upstream's fault (502)."""
    try:
        yield
    except (KeyError, IndexError, TypeError, AttributeError, ValueError, struct.error) as exc:
        # pydantic's ValidationError is a ValueError
        raise UpstreamError(f"upstream {where} sent an answer of an unexpected shape "
                            f"({type(exc).__name__}: {str(exc)[:200]}): {raw[:200]!r}") from None


def _call_id() -> str:
    return f"call_{uuid.uuid4().hex[:24]}"


def _arguments(arguments: Any) -> str:
    return arguments if isinstance(arguments, str) else json.dumps(arguments if arguments is not None else {})


def _usage(data: dict[str, Any]) -> OpenAIUsage:
    prompt, completion = int(data.get("prompt_eval_count") or 0), int(data.get("eval_count") or 0)
    return OpenAIUsage(prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion)



def chat_response(data: dict[str, Any], model: str) -> OpenAIChatCompletion:
    """An /api/chat answer as an OpenAI chat completion."""
    message = data.get("message") or {}
    calls = [
        OpenAIToolCall(id=_call_id(), function=OpenAIFunctionCall(
            name=c["function"]["name"], arguments=_arguments(c["function"].get("arguments"))))
        for c in message.get("tool_calls") or []
    ]
    return OpenAIChatCompletion(
        id=f"chatcmpl-{uuid.uuid4().hex}", created=int(time.time()), model=model,
        choices=[OpenAIChatChoice(
            index=0,
            message=OpenAIChatMessage(content=message.get("content") or "", tool_calls=calls,
                                      reasoning_content=message.get("thinking")),
            finish_reason="tool_calls" if calls else _FINISH.get(data.get("done_reason"), "stop"),
        )],
        usage=_usage(data),
    )
