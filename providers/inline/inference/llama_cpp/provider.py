"""The ``inline::llama-cpp`` inference provider: OpenAI-compatible chat and
completions on GGUF models (the router serves the Llama Stack routes from them)."""

from __future__ import annotations

import time
import uuid
from functools import partial
from typing import Any, AsyncIterator

from providers.utils.inference.local_models import accept_configured_llm
from stack.apis.models import Model
from stack.apis.openai import (
    OpenAIChatCompletion,
    OpenAIChatCompletionChunk,
    OpenAIChatCompletionRequest,
    OpenAICompletion,
    OpenAICompletionRequest,
    OpenAIEmbeddingsRequest,
    OpenAIEmbeddingsResponse,
)
from stack.errors import BadRequestError, NotFoundError, NotSupportedError
from stack.registry import ProviderContext

from . import _chat, _completion
from . import _generate as gen
from ._worker import ModelWorker, model_missing_error
from .config import LlamaCppConfig, LlamaCppModelConfig

_TOOL_MODES = {"none", "auto", "required"}


#: request fields honoured in chat and completions alike
_EITHER = frozenset({
    "model", "stream", "stream_options", "n", "max_tokens", "temperature", "top_p", "top_k", "min_p",
    "repetition_penalty", "presence_penalty", "frequency_penalty", "seed", "stop", "user", "response_format",
    "guided_json", "guided_grammar", "guided_choice", "logprobs", "stop_token_ids", "ignore_eos",
    "include_stop_str_in_output",
})


class LlamaCppInference:
    """GGUF models through llama-cpp-python, one worker thread per model."""

    #: The OpenAI request fields each operation honours; the router answers 400 to others.
    openai_params = {
        "openai_chat_completion": _EITHER | {"messages", "max_completion_tokens", "top_logprobs", "tools", "tool_choice",
                                             "parallel_tool_calls"},
        "openai_completion": _EITHER | {"prompt", "echo", "suffix"},
    }

    def __init__(self, config: LlamaCppConfig, context: ProviderContext | None = None) -> None:
        self.config = config
        self.context = context
        self.workers = {model_id: ModelWorker(model_id, entry, config) for model_id, entry in config.models.items()}

    def start(self) -> None:
        """Start the model threads (models load on first use until ``after_start``)."""
        for worker in self.workers.values():
            worker.start()

    def after_start(self) -> None:
        """With ``load: background``, begin loading every model now."""
        if self.config.load == "background":
            for worker in self.workers.values():
                worker.load_in_background()

    async def health(self) -> dict[str, str]:
        """Per model: "loading", "ready", "not loaded" (first_use), or "error: ..."."""
        return {model_id: worker.state for model_id, worker in self.workers.items()}

    async def shutdown(self) -> None:
        for worker in self.workers.values():
            await worker.shutdown()

    async def register_model(self, model: Model) -> Model:
        return accept_configured_llm(model, self.workers, "llama-cpp")

    def context_length(self, model_id: str) -> int | None:
        """The context window the model is loaded with (``n_ctx``), for the router's checks."""
        worker = self.workers.get(model_id)
        return worker.entry.n_ctx if worker is not None else None

    def default_max_tokens(self, model_id: str) -> int | None:
        """The model's ``default_max_tokens``, for the router to fill in when a request sets none."""
        worker = self.workers.get(model_id)
        return worker.entry.default_max_tokens if worker is not None else None

    def _worker(self, model_id: str) -> ModelWorker:
        worker = self.workers.get(model_id)
        if worker is None:
            raise NotFoundError("Model", model_id, self.workers)
        if worker.llama is None and worker.entry.locate() is None:
            raise model_missing_error(model_id, worker.entry)
        return worker

    # -- chat ----------------------------------------------------------------------

    async def openai_chat_completion(
        self, request: OpenAIChatCompletionRequest
    ) -> OpenAIChatCompletion | AsyncIterator[OpenAIChatCompletionChunk]:
        worker = self._worker(request.model)
        spec = chat_spec(request, worker)
        meta = _Meta.new("chatcmpl", request.model)
        if request.stream:
            usage = bool(request.stream_options and request.stream_options.include_usage)
            return await worker.stream(partial(_chat_stream_job, spec, meta, usage))
        return await worker.call(partial(_chat_job, spec, meta))

    # -- completions -----------------------------------------------------------------

    async def openai_completion(
        self, request: OpenAICompletionRequest
    ) -> OpenAICompletion | AsyncIterator[OpenAICompletion]:
        worker = self._worker(request.model)
        spec = _completion.completion_spec(request, worker.entry.n_ctx, _sampling(request, worker.entry),
                                           _grammar_of(request))
        meta = _Meta.new("cmpl", request.model)
        if request.stream:
            usage = bool(request.stream_options and request.stream_options.include_usage)
            return await worker.stream(partial(_completion.stream_job, spec, meta, usage))
        return await worker.call(partial(_completion.job, spec, meta))

    async def openai_embeddings(self, request: OpenAIEmbeddingsRequest) -> OpenAIEmbeddingsResponse:
        raise NotSupportedError(
            "inline::llama-cpp serves chat and completion models only; use an embedding provider for embeddings"
        )


class _Meta:
    """Id, creation time and model name shared by a response and all its chunks."""

    __slots__ = ("id", "created", "model")

    def __init__(self, id: str, created: int, model: str) -> None:
        self.id, self.created, self.model = id, created, model

    @classmethod
    def new(cls, prefix: str, model: str) -> "_Meta":
        return cls(f"{prefix}-{uuid.uuid4().hex}", int(time.time()), model)


# -- request -> spec (event loop) ---------------------------------------------------------


def _sampling(request: Any, entry: LlamaCppModelConfig) -> gen.Sampling:
    def value(name: str, default: Any) -> Any:
        v = getattr(request, name, None)
        return default if v is None else v

    temperature = value("temperature", 1.0)
    return gen.Sampling(
        temperature=temperature,
        top_p=value("top_p", 1.0),
        top_k=value("top_k", 0),
        min_p=value("min_p", 0.0),
        repeat_penalty=value("repetition_penalty", entry.greedy_repetition_penalty if temperature == 0 else 1.0),
        presence_penalty=value("presence_penalty", 0.0),
        frequency_penalty=value("frequency_penalty", 0.0),
        seed=request.seed,
    )


def _stops(request: Any) -> list[str]:
    stop = request.stop
    if stop is None:
        return []
    return [stop] if isinstance(stop, str) else list(stop)


def _grammar_of(request: Any) -> tuple[tuple[str, Any] | None, str]:
    """The one output constraint of a request, as (kind, value), and the field that set it."""
    found: list[tuple[str, tuple[str, Any]]] = []
    fmt = request.response_format
    if fmt is not None and fmt.type != "text":
        if fmt.type == "json_object":
            found.append(("response_format", ("json_object", None)))
        elif fmt.type == "json_schema":
            schema = (fmt.json_schema or {}).get("schema")
            found.append(("response_format", ("json_schema", schema) if schema is not None else ("json_object", None)))
        else:
            raise BadRequestError(f"{fmt.type!r} is not supported by inline::llama-cpp", field="response_format.type")
    if request.guided_json is not None:
        found.append(("guided_json", ("json_schema", request.guided_json)))
    if request.guided_grammar:
        found.append(("guided_grammar", ("gbnf", request.guided_grammar)))
    if getattr(request, "guided_choice", None):
        found.append(("guided_choice", ("choice", request.guided_choice)))
    if len(found) > 1:
        raise BadRequestError(f"give only one of {', '.join(name for name, _ in found)}", field=found[1][0])
    return (found[0][1], found[0][0]) if found else (None, "")


def chat_spec(request: OpenAIChatCompletionRequest, worker: ModelWorker) -> _chat.ChatSpec:
    """Validate a chat request for ``worker``'s model: every client error is raised here, before queueing."""
    entry = worker.entry
    tools = [t.model_dump(exclude_none=True) for t in request.tools or []]
    choice = request.tool_choice
    mode, name = "auto" if tools else "none", None
    if isinstance(choice, str):
        mode = choice
    elif isinstance(choice, dict):
        name = (choice.get("function") or {}).get("name")
        if choice.get("type", "function") != "function" or not name:
            raise BadRequestError('a named tool choice looks like {"type": "function", "function": {"name": ...}}',
                                  field="tool_choice")
        mode = "named"
    if mode not in _TOOL_MODES | {"named"}:
        raise BadRequestError(f"unknown tool_choice {mode!r}", field="tool_choice")
    if mode != "none" and not tools:
        raise BadRequestError(f"tool_choice {choice!r} needs tools", field="tool_choice")
    if mode == "named" and name not in {t["function"]["name"] for t in tools}:
        known = ", ".join(repr(t["function"]["name"]) for t in tools)
        raise BadRequestError(f"names {name!r}, which is not among the tools ({known})", field="tool_choice")
    if tools and mode != "none" and entry.chat_format != "chatml-function-calling":
        raise BadRequestError(
            f"model {request.model!r} uses chat_format {entry.chat_format!r}; tool calls need 'chatml-function-calling'",
            field="tools",
        )
    grammar, grammar_field = _grammar_of(request)
    top = None
    if request.logprobs:
        top = request.top_logprobs or 0
    elif request.top_logprobs:
        raise BadRequestError("needs logprobs: true", field="top_logprobs")
    stops = _stops(request)
    if entry.chat_format != "jinja":
        stops.append("<|im_end|>")
    return _chat.ChatSpec(
        model_id=request.model,
        chat_format=entry.chat_format,
        n_ctx=entry.n_ctx,
        messages=[m.model_dump(exclude_none=True) for m in request.messages],
        tools=tools or None,
        tool_mode=mode,
        tool_name=name,
        parallel_tool_calls=request.parallel_tool_calls is not False,
        grammar=grammar,
        grammar_field=grammar_field,
        sampling=_sampling(request, entry),
        limits=gen.Limits(
            max_tokens=request.max_new_tokens,
            fit_to_room=request._max_tokens_is_default,
            stop=stops,
            stop_token_ids=frozenset(request.stop_token_ids or ()),
            ignore_eos=bool(request.ignore_eos),
            include_stop_str_in_output=bool(request.include_stop_str_in_output),
            top_logprobs=top,
        ),
        n=request.n or 1,
    )


# -- jobs (worker thread) -------------------------------------------------------------------


def _prepare(llama: Any, spec: _chat.ChatSpec) -> tuple[str, str | None, int]:
    prompt = _chat.render(llama, spec)
    grammar = _chat.build_grammar(llama, *spec.grammar, spec.grammar_field) if spec.grammar else None
    prompt_tokens = len(gen.tokenize(llama, prompt))
    if prompt_tokens >= spec.n_ctx:
        raise BadRequestError(
            f"the prompt is {prompt_tokens} tokens; model {spec.model_id!r} has a context of {spec.n_ctx}",
            field="messages",
        )
    gen.check_room(spec.limits, prompt_tokens, spec.n_ctx)
    return prompt, grammar, prompt_tokens


def _seeded(sampling: gen.Sampling, i: int) -> gen.Sampling:
    if sampling.seed is None or i == 0:
        return sampling
    return gen.Sampling(**{**sampling.__dict__, "seed": sampling.seed + i})


def _logprobs_payload(entries: list[gen.TokenLogprob] | None) -> dict | None:
    if entries is None:
        return None
    return {"content": [
        {"token": e.token, "logprob": e.logprob, "bytes": e.bytes,
         "top_logprobs": [{"token": t, "logprob": lp, "bytes": b} for t, lp, b in e.top]}
        for e in entries
    ]}


def _usage(prompt_tokens: int, completion_tokens: int) -> dict:
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens}


def _chat_job(spec: _chat.ChatSpec, meta: _Meta, llama: Any, job) -> OpenAIChatCompletion:
    prompt, grammar, prompt_tokens = _prepare(llama, spec)
    choices, completion_tokens = [], 0
    for i in range(spec.n):
        c = _chat.run_choice(llama, job, spec, prompt, grammar, _seeded(spec.sampling, i), _chat.Listener())
        completion_tokens += c.completion_tokens
        calls = [{"id": t.id, "type": "function", "function": {"name": t.name, "arguments": t.arguments}}
                 for t in c.tool_calls]
        choices.append({
            "index": i,
            "message": {"role": "assistant", "content": c.content, "tool_calls": calls},
            "logprobs": _logprobs_payload(c.logprobs),
            "finish_reason": c.finish_reason,
        })
    return OpenAIChatCompletion.model_validate({
        "id": meta.id, "created": meta.created, "model": meta.model, "choices": choices,
        "usage": _usage(prompt_tokens, completion_tokens),
    })


def _chat_stream_job(spec: _chat.ChatSpec, meta: _Meta, include_usage: bool, llama: Any, job) -> None:
    prompt, grammar, prompt_tokens = _prepare(llama, spec)
    want_logprobs = spec.limits.top_logprobs is not None

    def chunk(index: int, delta: dict, *, logprobs: list | None = None, finish: str | None = None) -> None:
        job.emit(OpenAIChatCompletionChunk.model_validate({
            "id": meta.id, "created": meta.created, "model": meta.model,
            "choices": [{"index": index, "delta": delta, "finish_reason": finish,
                         "logprobs": _logprobs_payload(logprobs) if want_logprobs and logprobs is not None else None}],
        }))

    completion_tokens = 0
    for i in range(spec.n):
        chunk(i, {"role": "assistant", "content": ""})
        listen = _chat.Listener(
            content=lambda piece, i=i: chunk(i, {"content": piece.text}, logprobs=piece.logprobs),
            tool_start=lambda k, call, i=i: chunk(i, {"tool_calls": [
                {"index": k, "id": call.id, "type": "function", "function": {"name": call.name, "arguments": ""}}]}),
            tool_arguments=lambda k, text, i=i: text and chunk(i, {"tool_calls": [
                {"index": k, "function": {"arguments": text}}]}),
        )
        c = _chat.run_choice(llama, job, spec, prompt, grammar, _seeded(spec.sampling, i), listen)
        completion_tokens += c.completion_tokens
        chunk(i, {}, finish=c.finish_reason)
    if include_usage:
        job.emit(OpenAIChatCompletionChunk.model_validate({
            "id": meta.id, "created": meta.created, "model": meta.model, "choices": [],
            "usage": _usage(prompt_tokens, completion_tokens),
        }))
