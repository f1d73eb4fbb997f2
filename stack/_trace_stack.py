"""Router and provider spans for a running stack, with GenAI attributes on inference calls.

Attribute names follow the OpenTelemetry GenAI semantic conventions where one
exists (``gen_ai.request.model``, ``gen_ai.usage.input_tokens``...).
"""

from __future__ import annotations

from typing import Any

from . import tracing
from .apis import get_protocol, iter_webmethods

#: APIs whose calls are not traced: the Telemetry API itself (queries and posted events)
UNTRACED = frozenset({"telemetry"})

#: gen_ai.operation.name of the inference methods, as span attributes by method
_OPERATIONS = {method: {"gen_ai.operation.name": operation} for method, operation in {
    "chat_completion": "chat", "openai_chat_completion": "chat",
    "completion": "text_completion", "openai_completion": "text_completion",
    "embeddings": "embeddings", "openai_embeddings": "embeddings",
}.items()}


def operations(api: str, companions: list[str]) -> list[str]:
    """The operation names of ``api`` and of the APIs its router also serves (OpenAI-compatible routes)."""
    return [name for a in (api, *companions) for name, _wm, _fn in iter_webmethods(get_protocol(a))]


def instrument_router(router: Any, api: str, companions: list[str]) -> None:
    if api not in UNTRACED:
        inference = api == "inference"
        tracing.instrument(router, api, operations(api, companions), kind="router",
                           on_result=_request_model if inference else None,
                           attributes_by_name=_OPERATIONS if inference else None)


def instrument_provider(impl: Any, api: str, companions: list[str], provider_id: str, provider_type: str) -> None:
    if api in UNTRACED:
        return
    inference = api == "inference"
    tracing.instrument(impl, api, operations(api, companions), kind="provider", provider_id=provider_id,
                       attributes={"polystack.provider_type": provider_type} if inference else None,
                       attributes_by_name=_OPERATIONS if inference else None,
                       on_result=_inference_result if inference else None)


def _request_model(record: tracing.SpanRecord, args: tuple, kwargs: dict[str, Any], _result: Any) -> None:
    model = kwargs.get("model_id")
    if model is None:  # the OpenAI-compatible calls take one request
        model = getattr(args[0] if args else kwargs.get("request"), "model", None)
    if model is not None:
        record[tracing.ATTRIBUTES]["gen_ai.request.model"] = model


def _inference_result(record: tracing.SpanRecord, args: tuple, kwargs: dict[str, Any], result: Any) -> None:
    """Model and token counts (when the provider reports usage) as attributes; the latency and token
    MetricEvents are worked out from them when a sink asks (``_inference_metrics``)."""
    attributes = record[tracing.ATTRIBUTES]
    model = kwargs.get("model_id")
    if model is None:  # _request_model inlined: this runs on every traced inference call
        model = getattr(args[0] if args else kwargs.get("request"), "model", None)
    if model is not None:
        attributes["gen_ai.request.model"] = model
    usage = getattr(result, "usage", None)
    if usage is not None:
        if getattr(result, "model", None):
            attributes["gen_ai.response.model"] = result.model
        prompt, completion = getattr(usage, "prompt_tokens", None), getattr(usage, "completion_tokens", None)
        if prompt is not None:
            attributes["gen_ai.usage.input_tokens"] = prompt
        if completion is not None:
            attributes["gen_ai.usage.output_tokens"] = completion
    metrics = record[tracing.METRICS]
    record[tracing.METRICS] = _DERIVED if metrics is None else (*_DERIVED, *metrics)


def _inference_metrics(span: tracing.FinishedSpan) -> list[tracing.Metric]:
    """An inference call's MetricEvents, at its end: latency, and the token counts it reported."""
    attributes, at = span.attributes, span.end_ns
    tags = {"model_id": attributes.get("gen_ai.request.model")}  # one dict shared by the call's metrics
    metrics: list[tracing.Metric] = [("latency_ms", round((at - span.start_ns) / 1e6, 3), "ms", at, tags)]
    prompt, completion = attributes.get("gen_ai.usage.input_tokens"), attributes.get("gen_ai.usage.output_tokens")
    if prompt is not None:
        metrics.append(("prompt_tokens", prompt, "tokens", at, tags))
    if completion is not None:
        metrics.append(("completion_tokens", completion, "tokens", at, tags))
    if prompt is not None and completion is not None:
        metrics.append(("total_tokens", prompt + completion, "tokens", at, tags))
    return metrics


tracing.DERIVED_METRICS["gen_ai"] = _inference_metrics
_DERIVED = ("gen_ai",)  # shared by every inference span: nothing allocated per call
