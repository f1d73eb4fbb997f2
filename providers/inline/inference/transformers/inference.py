"""The ``inline::transformers`` provider: OpenAI-compatible chat and completions from local checkpoints.

The router serves the Llama Stack inference routes from these. Nothing
here imports torch: that happens in the model's worker thread when it loads.
"""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path
from typing import Any, AsyncIterator, Callable

from pydantic import ValidationError

from stack.apis.models import Model, ModelType
from stack.apis.openai import (
    OpenAIChatChoice,
    OpenAIChatChunkChoice,
    OpenAIChatCompletion,
    OpenAIChatCompletionChunk,
    OpenAIChatCompletionRequest,
    OpenAIChatDelta,
    OpenAIChatMessage,
    OpenAIChoiceLogprobs,
    OpenAICompletion,
    OpenAICompletionChoice,
    OpenAICompletionLogprobs,
    OpenAICompletionRequest,
    OpenAIEmbeddingsRequest,
    OpenAIEmbeddingsResponse,
    OpenAIResponseFormat,
    OpenAITokenLogprob,
    OpenAITopLogprob,
    OpenAIUsage,
)
from stack.errors import BadRequestError, ConflictError, NotFoundError, NotSupportedError, StackError, invalid_field
from stack.registry import ProviderContext

from providers.utils.inference.local_models import accept_configured_llm

from ._plan import Delta, Finished, GenerationPlan, JobResult, Prepared, Sampling, TokenLogprob
from ._worker import EventStream, ModelWorker
from .config import TransformersConfig, TransformersModelConfig

PROVIDER_TYPE = "inline::transformers"


class TransformersInference:
    """Hugging Face checkpoints run with torch: one worker thread per model, requests in arrival order."""

    #: request fields this provider honours; any other field sent with a non-default value is a 400 naming it.
    #: tools are not among them: tool calls would need a parser per model family's format.
    openai_params = frozenset({
        # chat and completions
        "model", "stream", "stream_options", "n", "max_tokens", "temperature", "top_p", "top_k", "min_p",
        "repetition_penalty", "frequency_penalty", "presence_penalty", "logit_bias", "seed", "stop", "user",
        "logprobs", "response_format", "min_tokens", "stop_token_ids", "include_stop_str_in_output",
        "skip_special_tokens", "return_token_ids", "return_tokens_as_token_ids",
        # chat (``echo`` in a chat request is refused by openai_chat_completion itself)
        "messages", "max_completion_tokens", "top_logprobs", "add_generation_prompt", "continue_final_message",
        "chat_template", "chat_template_kwargs",
        # completions
        "prompt", "echo",
    })

    def __init__(self, config: TransformersConfig, context: ProviderContext | None = None) -> None:
        self.config = config
        self.context = context
        self.workers = {model_id: ModelWorker(model_id, entry, config) for model_id, entry in config.models.items()}
        #: how many registered models a run-time worker serves: it is freed when the last goes
        self._names: dict[str, int] = {}
        self._started = False

    def after_start(self) -> None:
        self.start()

    def start(self) -> None:
        """Begin loading every model in its worker thread, unless models load on first use."""
        self._started = True
        if self.config.load == "background":
            for worker in self.workers.values():
                worker.start_loading()

    async def health(self) -> dict[str, str]:
        """Per model: "not loaded" (first_use), "loading", "ready", or "error: ..."."""
        return {model_id: worker.state for model_id, worker in self.workers.items()}

    async def shutdown(self) -> None:
        for worker in self.workers.values():
            await worker.shutdown()

    async def register_model(self, model: Model) -> Model:
        """A model of the config, or one whose ``metadata.transformers`` says where its weights are
        (a model entry, e.g. a fine-tuned checkpoint: a base plus ``adapters``)."""
        entry = model.metadata.get("transformers")
        if entry is None or model.provider_resource_id in self.config.models:
            return accept_configured_llm(model, self.workers, "transformers")
        if model.model_type != ModelType.llm:
            raise BadRequestError("transformers serves LLMs only", field="model_type")
        try:
            entry = TransformersModelConfig.model_validate(entry)
        except ValidationError as exc:
            raise invalid_field(exc, "metadata.transformers") from None
        if (missing := entry.missing()) is not None:
            raise BadRequestError(f"{missing} ({entry.describe()})", field="metadata.transformers")
        if (outside := self._outside_allowed_dirs(entry)) is not None:
            raise BadRequestError(f"{outside!r} is neither weights of this provider's models nor inside the stack's "
                                  "data directory or server.fetch.allow_dirs", field="metadata.transformers")
        model_id = model.provider_resource_id
        worker = self.workers.get(model_id)
        if worker is not None and worker.entry != entry:
            raise ConflictError(f"transformers model {model_id!r} is already served from other weights")
        if worker is None:
            worker = self.workers[model_id] = ModelWorker(model_id, entry, self.config)
            if self._started and self.config.load == "background":
                worker.start_loading()
        self._names[model_id] = self._names.get(model_id, 0) + 1
        return model

    def _outside_allowed_dirs(self, entry: TransformersModelConfig) -> str | None:
        """The first local path of a run-time entry that a client may not make this server load: paths
        of the configured models, the stack's data directory (checkpoints) and allow_dirs are fine."""
        def local_paths(e: TransformersModelConfig) -> list[str]:
            return [p for p in (e.path, e.gguf if isinstance(e.gguf, str) else None, e.tokenizer, *e.adapters) if p]

        def real(path: str) -> Path:
            return Path(os.path.realpath(os.path.expanduser(path)))

        configured = {real(p) for e in self.config.models.values() for p in local_paths(e)}
        roots = ([real(str(self.context.data_dir))] + list(self.context.fetcher.dirs)) if self.context else []
        for path in local_paths(entry):
            if real(path) not in configured and not any(real(path).is_relative_to(root) for root in roots):
                return path
        return None

    async def unregister_model(self, model: Model) -> None:
        """Free a model registered at run time (one of the config stays)."""
        model_id = model.provider_resource_id
        self._names[model_id] = self._names.get(model_id, 1) - 1
        if self._names[model_id] > 0:  # another name (a checkpoint's wandb-artifact:/// alias, say) still serves it
            return
        self._names.pop(model_id)
        if model_id not in self.config.models and (worker := self.workers.pop(model_id, None)) is not None:
            await worker.shutdown()

    def model_entry(self, model_id: str) -> TransformersModelConfig | None:
        """Where a model's weights are (for post-training, which trains on them and serves the result here)."""
        worker = self.workers.get(model_id)
        return worker.entry if worker is not None else None

    def context_length(self, model_id: str) -> int | None:
        """The loaded model's context window (None until it has loaded), for the router's checks."""
        worker = self.workers.get(model_id)
        loaded = worker.loaded if worker is not None else None
        return loaded.context_length if loaded is not None else None

    def default_max_tokens(self, model_id: str) -> int | None:
        """``max_new_tokens`` of the config, for the router to fill in when a request sets none."""
        return self.config.max_new_tokens if model_id in self.workers else None

    def _worker(self, model_id: str) -> ModelWorker:
        worker = self.workers.get(model_id)
        if worker is None:
            raise NotFoundError("Model", model_id, self.workers)
        return worker

    # -- chat ----------------------------------------------------------------------

    async def openai_chat_completion(
        self, request: OpenAIChatCompletionRequest
    ) -> OpenAIChatCompletion | AsyncIterator[OpenAIChatCompletionChunk]:
        worker = self._worker(request.model)
        plan = self._chat_plan(request)
        loaded = await worker.ready()
        if not request.stream:
            result = await worker.call(lambda cancel: _run(loaded, plan, cancel, None))
            return _chat_response(request, plan, result)
        events = worker.stream(lambda cancel, emit: _run(loaded, plan, cancel, emit))
        prepared = await _prepared(events)  # tokenized (or a 400) before the response starts
        return ChunkStream(_chat_chunks(request, plan, events, prepared), events.close)

    def _chat_plan(self, request: OpenAIChatCompletionRequest) -> GenerationPlan:
        if request.echo:
            raise BadRequestError("not supported in chat requests by this provider", field="echo")
        if request.top_logprobs and not request.logprobs:
            raise BadRequestError("needs logprobs: true", field="top_logprobs")
        _check_response_format(request.response_format)
        return GenerationPlan(
            kind="chat",
            model_id=request.model,
            messages=[_message(m.model_dump(exclude_none=True), i) for i, m in enumerate(request.messages)],
            add_generation_prompt=request.add_generation_prompt is not False,
            continue_final_message=bool(request.continue_final_message),
            chat_template=request.chat_template,
            chat_template_kwargs=dict(request.chat_template_kwargs or {}),
            n=request.n or 1,
            max_tokens=None if request._max_tokens_is_default else request.max_new_tokens,
            max_tokens_field="max_completion_tokens" if request.max_completion_tokens else "max_tokens",
            logprobs=(request.top_logprobs or 0) if request.logprobs else None,
            **self._common(request),
        )

    # -- completions ---------------------------------------------------------------

    async def openai_completion(self, request: OpenAICompletionRequest) -> OpenAICompletion | AsyncIterator[OpenAICompletion]:
        worker = self._worker(request.model)
        _check_response_format(request.response_format)
        if request.echo and request.logprobs is not None:
            raise BadRequestError("echo with logprobs needs the prompt's logprobs, which this provider does not compute",
                                  field="echo")
        plan = GenerationPlan(
            kind="completion",
            model_id=request.model,
            prompts=_prompts(request.prompt),
            n=request.n or 1,
            max_tokens=None if request._max_tokens_is_default else request.max_tokens,
            logprobs=request.logprobs,
            echo=bool(request.echo),
            **self._common(request),
        )
        loaded = await worker.ready()
        if not request.stream:
            result = await worker.call(lambda cancel: _run(loaded, plan, cancel, None))
            return _completion_response(request, plan, result)
        events = worker.stream(lambda cancel, emit: _run(loaded, plan, cancel, emit))
        prepared = await _prepared(events)
        return ChunkStream(_completion_chunks(request, plan, events, prepared), events.close)

    async def openai_embeddings(self, request: OpenAIEmbeddingsRequest) -> OpenAIEmbeddingsResponse:
        raise NotSupportedError(f"{PROVIDER_TYPE} generates text; serve embeddings with inline::sentence-transformers")

    # -- request -> plan -----------------------------------------------------------

    def _common(self, request: Any) -> dict[str, Any]:
        """Plan fields that chat and completion requests share (vLLM extras may be extra fields)."""
        stop = request.stop or []
        stop_token_ids = getattr(request, "stop_token_ids", None) or []
        if not isinstance(stop_token_ids, list) or not all(isinstance(t, int) for t in stop_token_ids):
            raise BadRequestError("must be a list of token ids", field="stop_token_ids")
        return {
            "stop": [stop] if isinstance(stop, str) else list(stop),
            "stop_token_ids": stop_token_ids,
            "min_tokens": _int_field(request, "min_tokens", 0, minimum=0),
            "include_stop_str_in_output": bool(getattr(request, "include_stop_str_in_output", False)),
            "skip_special_tokens": getattr(request, "skip_special_tokens", True) is not False,
            "tokens_as_ids": getattr(request, "return_tokens_as_token_ids", None) is True,
            "return_token_ids": getattr(request, "return_token_ids", None) is True,
            "sampling": _sampling(request),
            # the router's default (a model's metadata may set it) is cut to the room like the config's
            "default_max_tokens": request.max_tokens if request._max_tokens_is_default else self.config.max_new_tokens,
        }


def _run(loaded: Any, plan: GenerationPlan, cancel: Any, emit: Callable[[Any], None] | None) -> JobResult:
    from ._generation import run  # imports torch: first called in a worker thread

    return run(loaded, plan, cancel, emit)


async def _prepared(events: EventStream) -> Prepared:
    first = await events.next()
    if not isinstance(first, Prepared):  # only when the provider shut down under the request
        raise StackError("the request was cancelled before it started")
    return first


class ChunkStream:
    """An async iterator of response chunks that stops generation when it is closed or dropped.

    (A plain async generator that was never started runs no ``finally`` on close.)
    """

    def __init__(self, chunks: AsyncIterator[Any], on_close: Callable[[], None]) -> None:
        self._chunks, self._on_close = chunks, on_close

    def __aiter__(self) -> "ChunkStream":
        return self

    async def __anext__(self) -> Any:
        return await self._chunks.__anext__()

    async def aclose(self) -> None:
        self._on_close()
        await self._chunks.aclose()

    def __del__(self) -> None:
        self._on_close()


# -- request fields ----------------------------------------------------------------


def _check_response_format(fmt: OpenAIResponseFormat | None) -> None:
    if fmt is not None and fmt.type != "text":
        raise BadRequestError(
            f"{fmt.type!r} is not supported: {PROVIDER_TYPE} has no constrained decoding "
            "(inline::llama-cpp and remote::vllm have)",
            field="response_format",
        )


def _message(message: dict[str, Any], i: int) -> dict[str, Any]:
    """An OpenAI message as chat templates expect it: text content, 'developer' as 'system'."""
    if message["role"] == "developer":
        message["role"] = "system"
    content = message.get("content")
    if isinstance(content, list):
        parts = []
        for part in content:
            if part.get("type") != "text":
                raise BadRequestError(f"{part.get('type')!r} parts are not supported: {PROVIDER_TYPE} serves text models",
                                      field=f"messages[{i}].content")
            parts.append(part.get("text", ""))
        message["content"] = "".join(parts)
    elif content is None:
        message["content"] = ""
    return message


def _prompts(prompt: Any) -> list[str | list[int]]:
    if isinstance(prompt, str):
        return [prompt]
    if prompt and all(isinstance(p, int) for p in prompt):
        return [list(prompt)]
    if not prompt:
        raise BadRequestError("at least one prompt is needed", field="prompt")
    return [p if isinstance(p, str) else list(p) for p in prompt]


def _int_field(request: Any, name: str, default: int, minimum: int) -> int:
    value = getattr(request, name, None)
    if value is None:
        return default
    if not isinstance(value, int) or value < minimum:
        raise BadRequestError(f"must be an integer >= {minimum}", field=name)
    return value


def _number(request: Any, name: str, low: float, high: float) -> float | None:
    value = getattr(request, name, None)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise BadRequestError(f"must be a number in [{low}, {high}]", field=name)
    return float(value)


def _sampling(request: Any) -> Sampling:
    top_k = getattr(request, "top_k", None)
    if top_k is not None and (not isinstance(top_k, int) or top_k < -1):
        raise BadRequestError("must be an integer; -1 or 0 turns it off", field="top_k")
    penalty = _number(request, "repetition_penalty", 0.0, 100.0)
    if penalty == 0.0:
        raise BadRequestError("must be greater than 0", field="repetition_penalty")
    return Sampling(
        temperature=request.temperature,
        top_p=request.top_p,
        top_k=top_k,
        min_p=_number(request, "min_p", 0.0, 1.0),
        repetition_penalty=penalty,
        frequency_penalty=_number(request, "frequency_penalty", -2.0, 2.0) or 0.0,
        presence_penalty=_number(request, "presence_penalty", -2.0, 2.0) or 0.0,
        logit_bias=dict(request.logit_bias or {}),
        seed=request.seed,
    )


# -- results -> responses --------------------------------------------------------------


def _usage(prompt_tokens: int, completion_tokens: int) -> OpenAIUsage:
    return OpenAIUsage(prompt_tokens=prompt_tokens, completion_tokens=completion_tokens,
                       total_tokens=prompt_tokens + completion_tokens)


def _chat_logprobs(entries: list[TokenLogprob] | None) -> OpenAIChoiceLogprobs | None:
    if entries is None:
        return None
    return OpenAIChoiceLogprobs(content=[
        OpenAITokenLogprob(
            token=e.token, logprob=e.logprob, bytes=list(e.token.encode()),
            top_logprobs=[OpenAITopLogprob(token=t, logprob=lp, bytes=list(t.encode())) for t, lp in e.top],
        )
        for e in entries
    ])


def _chat_response(request: OpenAIChatCompletionRequest, plan: GenerationPlan, result: JobResult) -> OpenAIChatCompletion:
    choices = [
        OpenAIChatChoice(
            index=c.index,
            message=OpenAIChatMessage(content=c.text),
            finish_reason=c.finish_reason,
            logprobs=_chat_logprobs(c.logprobs) if plan.logprobs is not None else None,
            **({"token_ids": c.token_ids} if plan.return_token_ids else {}),
        )
        for c in result.choices
    ]
    return OpenAIChatCompletion(
        id=f"chatcmpl-{uuid.uuid4().hex}", created=int(time.time()), model=request.model, choices=choices,
        usage=_usage(result.prompt_tokens, result.completion_tokens),
        **({"prompt_token_ids": result.prompt_ids[0]} if plan.return_token_ids else {}),
    )


def _stream_usage(request: Any) -> tuple[bool, bool]:
    """(a final usage chunk, usage on every chunk)."""
    options = request.stream_options
    if options is None:
        return False, False
    return options.include_usage is not False, bool(options.continuous_usage_stats)


async def _chat_chunks(request: OpenAIChatCompletionRequest, plan: GenerationPlan, events: EventStream,
                       prepared: Prepared) -> AsyncIterator[OpenAIChatCompletionChunk]:
    chunk_id, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())
    prompt_tokens = prepared.prompt_tokens
    # vLLM's return_token_ids: the prompt's ids on the first chunk, each delta's ids on its chunk
    prompt_ids = {"prompt_token_ids": prepared.prompt_ids[0]} if plan.return_token_ids else {}
    final_usage, every_usage = _stream_usage(request)
    tokens: dict[int, int] = {}
    started: set[int] = set()

    def chunk(choice: OpenAIChatChunkChoice) -> OpenAIChatCompletionChunk:
        nonlocal prompt_ids
        usage = _usage(prompt_tokens, sum(tokens.values())) if every_usage else None
        first, prompt_ids = prompt_ids, {}
        return OpenAIChatCompletionChunk(id=chunk_id, created=created, model=request.model, choices=[choice],
                                         usage=usage, **first)

    while (event := await events.next()) is not None:
        role = None if event.index in started else "assistant"
        started.add(event.index)
        if isinstance(event, Delta):
            tokens[event.index] = event.completion_tokens
            logprobs = _chat_logprobs(event.logprobs) if plan.logprobs is not None else None
            ids = {"token_ids": event.token_ids} if plan.return_token_ids else {}
            yield chunk(OpenAIChatChunkChoice(index=event.index, delta=OpenAIChatDelta(role=role, content=event.text),
                                              logprobs=logprobs, **ids))
        elif isinstance(event, Finished):
            tokens[event.index] = event.completion_tokens
            yield chunk(OpenAIChatChunkChoice(index=event.index, delta=OpenAIChatDelta(role=role),
                                              finish_reason=event.finish_reason))
    if final_usage:
        yield OpenAIChatCompletionChunk(id=chunk_id, created=created, model=request.model, choices=[],
                                        usage=_usage(prompt_tokens, sum(tokens.values())))


class _CompletionLogprobs:
    """Legacy completions logprobs of one choice, with text offsets running on across chunks."""

    def __init__(self, offset: int) -> None:
        self.offset = offset

    def build(self, entries: list[TokenLogprob]) -> OpenAICompletionLogprobs:
        offsets = []
        for e in entries:
            offsets.append(self.offset)
            self.offset += len(e.token)
        return OpenAICompletionLogprobs(
            tokens=[e.token for e in entries],
            token_logprobs=[e.logprob for e in entries],
            top_logprobs=[dict(e.top) if e.top else {e.token: e.logprob} for e in entries],
            text_offset=offsets,
        )


def _completion_response(request: OpenAICompletionRequest, plan: GenerationPlan, result: JobResult) -> OpenAICompletion:
    choices = []
    for c in result.choices:
        prefix = result.prompt_texts[c.index // plan.n] if plan.echo else ""
        logprobs = _CompletionLogprobs(len(prefix)).build(c.logprobs) if c.logprobs is not None else None
        ids = ({"token_ids": c.token_ids, "prompt_token_ids": result.prompt_ids[c.index // plan.n]}
               if plan.return_token_ids else {})
        choices.append(OpenAICompletionChoice(index=c.index, text=prefix + c.text, logprobs=logprobs,
                                              finish_reason=c.finish_reason, **ids))
    return OpenAICompletion(
        id=f"cmpl-{uuid.uuid4().hex}", created=int(time.time()), model=request.model, choices=choices,
        usage=_usage(result.prompt_tokens, result.completion_tokens),
    )


async def _completion_chunks(request: OpenAICompletionRequest, plan: GenerationPlan, events: EventStream,
                             prepared: Prepared) -> AsyncIterator[OpenAICompletion]:
    chunk_id, created = f"cmpl-{uuid.uuid4().hex}", int(time.time())
    final_usage, every_usage = _stream_usage(request)
    tokens: dict[int, int] = {}
    offsets: dict[int, _CompletionLogprobs] = {}

    def chunk(choice: OpenAICompletionChoice) -> OpenAICompletion:
        usage = _usage(prepared.prompt_tokens, sum(tokens.values())) if every_usage else None
        return OpenAICompletion(id=chunk_id, created=created, model=request.model, choices=[choice], usage=usage)

    while (event := await events.next()) is not None:
        prefix = ""
        if event.index not in offsets:
            prefix = prepared.prompt_texts[event.index // plan.n] if plan.echo else ""
            offsets[event.index] = _CompletionLogprobs(len(prefix))
        tokens[event.index] = event.completion_tokens
        if isinstance(event, Delta):
            logprobs = offsets[event.index].build(event.logprobs) if plan.logprobs is not None else None
            yield chunk(OpenAICompletionChoice(index=event.index, text=prefix + event.text, logprobs=logprobs))
        elif isinstance(event, Finished):
            yield chunk(OpenAICompletionChoice(index=event.index, text=prefix, finish_reason=event.finish_reason))
    if final_usage:
        yield OpenAICompletion(id=chunk_id, created=created, model=request.model, choices=[],
                               usage=_usage(prepared.prompt_tokens, sum(tokens.values())))
