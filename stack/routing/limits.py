"""Bounds on what one generation request may ask for, checked before a model runs.

A request for 10**12 tokens, 10**6 choices or a top-k past any vocabulary
would otherwise reach the model (and generate until its context ends, or
overflow a C int). The router answers it at once with a 400 naming the field,
as OpenAI and vLLM do, on the Llama Stack and the OpenAI-compatible routes alike.

A request that sets no max_tokens (Llama Stack: 0 or none) gets the model's
``default_max_tokens``: without one, a small greedy model repeats itself until
its context is full. The default is cut to what the context allows and is
marked as a default, so a provider that counts the prompt cuts it further to
what the prompt leaves: a default never causes a 400.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ..apis.inference import SamplingParams
from ..errors import BadRequestError


class GenerationLimits(BaseModel):
    """``server.limits``: the most one generation request may ask for."""

    model_config = ConfigDict(extra="forbid")

    max_n: int = Field(128, ge=1, description="Most choices per request (n, best_of)")
    max_top_logprobs: int = Field(20, ge=0, description="Most alternatives per token (top_logprobs, logprobs)")
    max_top_k: int = Field(1 << 20, ge=1, description="Largest top_k for sampling (no vocabulary is larger)")
    max_tokens: int = Field(
        1 << 20, ge=1,
        description="Most tokens one request may generate when the model's context length is not known",
    )


def _at_most(value: Any, limit: int, field: str, what: str) -> None:
    if isinstance(value, int) and value > limit:
        raise BadRequestError(f"{value} is more than the {limit} {what} this server allows (server.limits)", field=field)


def _max_tokens(value: Any, field: str, context_length: int | None, limits: GenerationLimits, model: str) -> None:
    if not isinstance(value, int) or value <= 0:
        return
    if context_length is not None and value > context_length:
        raise BadRequestError(
            f"{value} is more than model {model!r} can generate: its context is {context_length} tokens, "
            "prompt included", field=field,
        )
    _at_most(value, limits.max_tokens, field, "tokens per request")


def check_openai(request: Any, context_length: int | None, limits: GenerationLimits) -> None:
    """The bounds of an OpenAI-compatible chat or completion request."""
    for name in ("max_tokens", "max_completion_tokens"):
        _max_tokens(getattr(request, name, None), name, context_length, limits, request.model)
    _at_most(getattr(request, "n", None), limits.max_n, "n", "choices")
    _at_most(getattr(request, "best_of", None), limits.max_n, "best_of", "choices")
    _at_most(getattr(request, "top_logprobs", None), limits.max_top_logprobs, "top_logprobs", "alternatives per token")
    if not isinstance(getattr(request, "logprobs", None), bool):  # the completions route's logprobs is a count
        _at_most(getattr(request, "logprobs", None), limits.max_top_logprobs, "logprobs", "alternatives per token")
    _at_most(getattr(request, "top_k", None), limits.max_top_k, "top_k", "top_k")


def check_llama_stack(model: str, kwargs: dict[str, Any], context_length: int | None, limits: GenerationLimits) -> None:
    """The bounds of a Llama Stack chat-completion or completion request."""
    sampling = kwargs.get("sampling_params")
    if sampling is not None:
        _max_tokens(sampling.max_tokens, "sampling_params.max_tokens", context_length, limits, model)
        _at_most(getattr(sampling.strategy, "top_k", None), limits.max_top_k, "sampling_params.strategy.top_k", "top_k")
    logprobs = kwargs.get("logprobs")
    if logprobs is not None:
        _at_most(logprobs.top_k, limits.max_top_logprobs, "logprobs.top_k", "alternatives per token")


def fitted_default(default: int | None, context_length: int | None, limits: GenerationLimits) -> int | None:
    """``default`` cut to the model's context and ``server.limits.max_tokens``."""
    if default is None:
        return None
    return min(default, limits.max_tokens, context_length or default)


def default_openai(request: Any, default: int | None) -> Any:
    """``request`` with ``max_tokens = default`` when it sets neither max_tokens nor max_completion_tokens."""
    if default is None or request.max_tokens is not None or getattr(request, "max_completion_tokens", None) is not None:
        return request
    filled = request.model_copy(update={"max_tokens": default})
    filled._max_tokens_is_default = True
    return filled


def default_converted(request: Any, default: int | None) -> Any:
    """A request converted from a Llama Stack call that set no max_tokens (0 or
    unset), with ``max_tokens = default``; None when there is no default, which
    is Llama Stack's "no limit" (OpenAI's completions default of 16 is not the
    Llama Stack caller's)."""
    if "max_tokens" in request.model_fields_set:
        return request
    filled = request.model_copy(update={"max_tokens": default})
    filled._max_tokens_is_default = default is not None
    return filled


def default_llama_stack(kwargs: dict[str, Any], default: int | None) -> dict[str, Any]:
    """``kwargs`` with ``sampling_params.max_tokens = default`` when it is 0 or unset."""
    sampling = kwargs.get("sampling_params")
    if default is None or (sampling is not None and sampling.max_tokens):
        return kwargs
    filled = (sampling or SamplingParams()).model_copy(update={"max_tokens": default})
    filled._max_tokens_is_default = True
    return {**kwargs, "sampling_params": filled}
