"""stack/_trace_stack.py: GenAI attributes on inference spans, their metrics worked out at the sink."""

from __future__ import annotations

import asyncio
import contextlib
from types import SimpleNamespace

from stack import _trace_stack, tracing


class _Provider:
    """A test double of an inference provider: answers ``result`` (None: the call fails)."""

    def __init__(self, result) -> None:
        self.result = result

    async def openai_chat_completion(self, request):
        if self.result is None:
            raise RuntimeError("upstream down")
        return self.result


def _finished_call(result):
    """The provider span of one call, instrumented as the server instruments providers."""
    provider = _Provider(result)
    _trace_stack.instrument_provider(provider, "inference", ["openai"], "p1", "remote::openai")
    collector = tracing.Collector([])
    tracing.install(collector)
    try:
        with contextlib.suppress(RuntimeError):
            asyncio.run(provider.openai_chat_completion(SimpleNamespace(model="llama")))
    finally:
        tracing.install(None)
    [span] = map(tracing.named_span, collector._spans)
    return span


def test_an_inference_span_carries_model_and_tokens_and_their_metrics():
    usage = SimpleNamespace(prompt_tokens=5, completion_tokens=4)
    span = _finished_call(SimpleNamespace(model="llama-3", usage=usage))
    assert span.name == "provider inference.openai_chat_completion"
    assert span.attributes == {"polystack.api": "inference", "polystack.provider_type": "remote::openai",
                               "polystack.provider_id": "p1", "gen_ai.operation.name": "chat",
                               "gen_ai.request.model": "llama", "gen_ai.response.model": "llama-3",
                               "gen_ai.usage.input_tokens": 5, "gen_ai.usage.output_tokens": 4}
    metrics = {name: (value, unit, at, tags) for name, value, unit, at, tags in tracing.span_metrics(span)}
    tags, end = {"model_id": "llama"}, span.end_ns
    assert metrics == {"latency_ms": (round((end - span.start_ns) / 1e6, 3), "ms", end, tags),
                       "prompt_tokens": (5, "tokens", end, tags), "completion_tokens": (4, "tokens", end, tags),
                       "total_tokens": (9, "tokens", end, tags)}


def test_without_usage_only_the_latency_is_a_metric():
    span = _finished_call(None)  # a failed call: no result
    assert [m[0] for m in tracing.span_metrics(span)] == ["latency_ms"]
    assert "gen_ai.usage.input_tokens" not in span.attributes
    assert span.status == "error" and span.attributes["error.type"] == "RuntimeError"
