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


class _StreamingProvider:
    """A test double of a streaming provider: its chunks, the last one with the usage."""

    async def openai_chat_completion(self, request):
        async def chunks():
            yield SimpleNamespace(model="llama-3", usage=None)
            yield SimpleNamespace(model="llama-3", usage=SimpleNamespace(prompt_tokens=2, completion_tokens=6))
        return chunks()


def test_a_streamed_call_carries_the_request_model_and_the_last_chunk_s_usage():
    provider = _StreamingProvider()
    _trace_stack.instrument_provider(provider, "inference", ["openai"], "p1", "remote::openai")
    collector = tracing.Collector([])
    tracing.install(collector)

    async def consume():
        return [chunk async for chunk in await provider.openai_chat_completion(request=SimpleNamespace(model="m"))]

    try:
        assert len(asyncio.run(consume())) == 2
    finally:
        tracing.install(None)
    [span] = map(tracing.named_span, collector._spans)
    assert {key: span.attributes.get(key) for key in ("gen_ai.request.model", "gen_ai.response.model",
                                                      "gen_ai.usage.input_tokens", "gen_ai.usage.output_tokens",
                                                      "polystack.stream")} == {
        "gen_ai.request.model": "m", "gen_ai.response.model": "llama-3", "gen_ai.usage.input_tokens": 2,
        "gen_ai.usage.output_tokens": 6, "polystack.stream": True}


def test_the_request_model_is_the_one_asked_when_the_call_is_made():
    """Read as the call is made (``model_id=`` first): a request changed while the call runs does not move it."""
    class _Mutating:
        async def chat_completion(self, request=None, model_id=None):
            request.model = "changed"
            return SimpleNamespace(model="served", usage=None)

    provider, request = _Mutating(), SimpleNamespace(model="asked")
    _trace_stack.instrument_provider(provider, "inference", [], "p1", "remote::openai")
    collector = tracing.Collector([])
    tracing.install(collector)
    try:
        asyncio.run(provider.chat_completion(request=request))
        asyncio.run(provider.chat_completion(request=SimpleNamespace(model="asked"), model_id="by-id"))
    finally:
        tracing.install(None)
    assert [tracing.named_span(s).attributes["gen_ai.request.model"] for s in collector._spans] == ["asked", "by-id"]
