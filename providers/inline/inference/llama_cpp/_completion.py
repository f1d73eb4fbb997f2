"""Legacy text completions (/v1/completions): request -> spec, and the worker-thread jobs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from stack.apis.openai import OpenAICompletion, OpenAICompletionRequest
from stack.errors import BadRequestError

from . import _chat
from . import _generate as gen


@dataclass
class CompletionSpec:
    model_id: str
    n_ctx: int
    prompts: list[str | list[int]]
    echo: bool
    suffix: str | None
    n: int
    sampling: gen.Sampling
    limits: gen.Limits
    grammar: tuple[str, Any] | None
    grammar_field: str


def completion_spec(
    request: OpenAICompletionRequest, n_ctx: int, sampling: gen.Sampling, grammar: tuple[tuple[str, Any] | None, str]
) -> CompletionSpec:
    prompt = request.prompt
    if isinstance(prompt, str):
        prompts: list[str | list[int]] = [prompt]
    elif prompt and all(isinstance(p, int) for p in prompt):
        prompts = [list(prompt)]
    else:
        prompts = list(prompt)
    if not prompts:
        raise BadRequestError("give at least one prompt", field="prompt")
    if request.echo and request.logprobs is not None:
        raise BadRequestError("logprobs of the echoed prompt are not computed by inline::llama-cpp", field="echo")
    stop = request.stop
    return CompletionSpec(
        model_id=request.model,
        n_ctx=n_ctx,
        prompts=prompts,
        echo=bool(request.echo),
        suffix=request.suffix,
        n=request.n or 1,
        sampling=sampling,
        limits=gen.Limits(
            max_tokens=request.max_tokens,
            fit_to_room=request._max_tokens_is_default,
            stop=[stop] if isinstance(stop, str) else list(stop or []),
            top_logprobs=request.logprobs,
            # vLLM extras (not declared by the completions request model, but honoured as in chat)
            stop_token_ids=frozenset(getattr(request, "stop_token_ids", None) or ()),
            ignore_eos=bool(getattr(request, "ignore_eos", False)),
            include_stop_str_in_output=bool(getattr(request, "include_stop_str_in_output", False)),
        ),
        grammar=grammar[0],
        grammar_field=grammar[1],
    )


def _prompt(llama: Any, spec: CompletionSpec, prompt: str | list[int]) -> tuple[list[int], str]:
    """Prompt tokens (fill-in-the-middle when there is a suffix) and the prompt text for ``echo``."""
    if isinstance(prompt, str):
        text, tokens = prompt, gen.tokenize(llama, prompt)
    else:
        tokens = prompt
        text = llama.detokenize(tokens).decode("utf-8", errors="replace")
    if spec.suffix is not None:
        import llama_cpp

        vocab = llama._model.vocab
        pre, suf, mid = (llama_cpp.llama_vocab_fim_pre(vocab), llama_cpp.llama_vocab_fim_suf(vocab),
                         llama_cpp.llama_vocab_fim_mid(vocab))
        if min(pre, suf, mid) < 0:
            raise BadRequestError(f"model {spec.model_id!r} has no fill-in-the-middle tokens", field="suffix")
        body = llama.tokenize(text.encode("utf-8"), add_bos=False, special=False)
        after = llama.tokenize(spec.suffix.encode("utf-8"), add_bos=False, special=False)
        tokens = [pre, *body, suf, *after, mid]
    if not tokens:
        tokens = [llama.token_bos()]
    if len(tokens) >= spec.n_ctx:
        raise BadRequestError(f"the prompt is {len(tokens)} tokens; this model's context is {spec.n_ctx}", field="prompt")
    gen.check_room(spec.limits, len(tokens), spec.n_ctx)
    return tokens, text


def _logprobs(entries: list[gen.TokenLogprob], start: int) -> dict:
    offsets, at = [], start
    for e in entries:
        offsets.append(at)
        at += len(e.token)
    return {
        "tokens": [e.token for e in entries],
        "token_logprobs": [e.logprob for e in entries],
        "top_logprobs": [{t: lp for t, lp, _ in e.top} or {e.token: e.logprob} for e in entries],
        "text_offset": offsets,
    }


def _prepare(llama: Any, spec: CompletionSpec) -> tuple[list[tuple[list[int], str]], str | None]:
    prompts = [_prompt(llama, spec, p) for p in spec.prompts]
    grammar = _chat.build_grammar(llama, *spec.grammar, spec.grammar_field) if spec.grammar else None
    return prompts, grammar


def _usage(prompts: list[tuple[list[int], str]], completion_tokens: int) -> dict:
    prompt_tokens = sum(len(tokens) for tokens, _ in prompts)
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens}


def _seeded(spec: CompletionSpec, i: int) -> gen.Sampling:
    if spec.sampling.seed is None or i == 0:
        return spec.sampling
    return gen.Sampling(**{**spec.sampling.__dict__, "seed": spec.sampling.seed + i})


def job(spec: CompletionSpec, meta: Any, llama: Any, job: Any) -> OpenAICompletion:
    prompts, grammar = _prepare(llama, spec)
    choices, completion_tokens = [], 0
    for p, (tokens, text) in enumerate(prompts):
        for j in range(spec.n):
            out = gen.run(llama, job, tokens, _seeded(spec, j), spec.limits, grammar=grammar, n_ctx=spec.n_ctx)
            completion_tokens += out.completion_tokens
            head = text if spec.echo else ""
            choices.append({
                "index": p * spec.n + j,
                "text": head + out.text,
                "logprobs": _logprobs(out.logprobs, len(head)) if spec.limits.top_logprobs is not None else None,
                "finish_reason": out.finish_reason,
            })
    return OpenAICompletion.model_validate({
        "id": meta.id, "created": meta.created, "model": meta.model, "choices": choices,
        "usage": _usage(prompts, completion_tokens),
    })


def stream_job(spec: CompletionSpec, meta: Any, include_usage: bool, llama: Any, job: Any) -> None:
    prompts, grammar = _prepare(llama, spec)
    want_logprobs = spec.limits.top_logprobs is not None

    def chunk(index: int, text: str, *, logprobs: dict | None = None, finish: str | None = None) -> None:
        job.emit(OpenAICompletion.model_validate({
            "id": meta.id, "created": meta.created, "model": meta.model,
            "choices": [{"index": index, "text": text, "logprobs": logprobs, "finish_reason": finish}],
        }))

    completion_tokens = 0
    for p, (tokens, text) in enumerate(prompts):
        for j in range(spec.n):
            index = p * spec.n + j
            offset = [0]
            if spec.echo:
                chunk(index, text)
                offset[0] = len(text)

            def on_piece(piece: gen.Piece, index: int = index, offset: list[int] = offset) -> None:
                lp = _logprobs(piece.logprobs, offset[0]) if want_logprobs else None
                offset[0] += len(piece.text)
                chunk(index, piece.text, logprobs=lp)

            out = gen.run(llama, job, tokens, _seeded(spec, j), spec.limits, grammar=grammar, on_piece=on_piece,
                          n_ctx=spec.n_ctx)
            completion_tokens += out.completion_tokens
            chunk(index, "", finish=out.finish_reason)
    if include_usage:
        job.emit(OpenAICompletion.model_validate({
            "id": meta.id, "created": meta.created, "model": meta.model, "choices": [],
            "usage": _usage(prompts, completion_tokens),
        }))
