"""Router and provider spans for a running stack, with GenAI attributes on inference calls.

Attribute names follow the OpenTelemetry GenAI semantic conventions where one
exists (``gen_ai.request.model``, ``gen_ai.usage.input_tokens``...).
"""

from __future__ import annotations

import time
from typing import Any

from . import tracing
from .apis import get_protocol, iter_webmethods

#: APIs whose calls are not traced: the Telemetry API itself (queries and posted events)
UNTRACED = frozenset({"telemetry"})

_OPERATIONS = {
    "chat_completion": "chat", "openai_chat_completion": "chat",
    "completion": "text_completion", "openai_completion": "text_completion",
    "embeddings": "embeddings", "openai_embeddings": "embeddings",
}


def operations(api: str, companions: list[str]) -> list[str]:
    """The operation names of ``api`` and of the APIs its router also serves (OpenAI-compatible routes)."""
    return [name for a in (api, *companions) for name, _wm, _fn in iter_webmethods(get_protocol(a))]


def instrument_router(router: Any, api: str, companions: list[str]) -> None:
    if api not in UNTRACED:
        tracing.instrument(router, api, operations(api, companions), kind="router",
                           on_result=_request_model if api == "inference" else None)


def instrument_provider(impl: Any, api: str, companions: list[str], provider_id: str, provider_type: str) -> None:
    if api in UNTRACED:
        return
    hook = None
    if api == "inference":
        def hook(record: tracing.SpanRecord, args: tuple, kwargs: dict[str, Any], result: Any) -> None:
            record.set("polystack.provider_type", provider_type)
            _inference_result(record, args, kwargs, result)
    tracing.instrument(impl, api, operations(api, companions), kind="provider", provider_id=provider_id,
                       on_result=hook)


def _request_model(record: tracing.SpanRecord, args: tuple, kwargs: dict[str, Any], _result: Any) -> None:
    request = kwargs.get("request", args[0] if args else None)  # the OpenAI-compatible calls take one request
    model = kwargs.get("model_id") or getattr(request, "model", None)
    if model is not None:
        record.set("gen_ai.request.model", model)
    operation = _OPERATIONS.get(record.name.rsplit(".", 1)[-1])
    if operation is not None:
        record.set("gen_ai.operation.name", operation)


def _inference_result(record: tracing.SpanRecord, args: tuple, kwargs: dict[str, Any], result: Any) -> None:
    """Model, token counts (when the provider reports usage) and latency; the last two as MetricEvents too."""
    _request_model(record, args, kwargs, result)
    now = time.time_ns()
    model = record.attributes.get("gen_ai.request.model")
    tracing.record_metric(record, "latency_ms", round((now - record.start_ns) / 1e6, 3), "ms", model_id=model, at=now)
    usage = getattr(result, "usage", None)
    if usage is None:
        return
    if getattr(result, "model", None):
        record.set("gen_ai.response.model", result.model)
    prompt, completion = getattr(usage, "prompt_tokens", None), getattr(usage, "completion_tokens", None)
    if prompt is not None:
        record.set("gen_ai.usage.input_tokens", prompt)
        tracing.record_metric(record, "prompt_tokens", prompt, "tokens", model_id=model, at=now)
    if completion is not None:
        record.set("gen_ai.usage.output_tokens", completion)
        tracing.record_metric(record, "completion_tokens", completion, "tokens", model_id=model, at=now)
    if prompt is not None and completion is not None:
        tracing.record_metric(record, "total_tokens", prompt + completion, "tokens", model_id=model, at=now)
