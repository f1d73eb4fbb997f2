"""Router and provider spans for a running stack, with GenAI attributes on inference calls.

Attribute names follow the OpenTelemetry GenAI semantic conventions where one
exists (``gen_ai.request.model``, ``gen_ai.usage.input_tokens``...).
"""

from __future__ import annotations

from typing import Any

from . import _spancore, tracing
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


#: the router span's hook: the request's model (``model_id=``, else the request's ``.model``)
_request_model = _spancore.InferenceAttributes(model="gen_ai.request.model")
#: the provider span's: the request's model and, when the provider reports usage, the response's model
#: and token counts; the latency and token MetricEvents are worked out from them when a sink asks
#: (``_inference_metrics``). Both hooks run in C (stack/_spancore.c), on every traced inference call
_inference_result = _spancore.InferenceAttributes(
    model="gen_ai.request.model", response_model="gen_ai.response.model",
    input_tokens="gen_ai.usage.input_tokens", output_tokens="gen_ai.usage.output_tokens", derived=("gen_ai",))


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
