"""stack/_trace_stack.py: GenAI attributes on inference spans, their metrics worked out at the sink."""

from __future__ import annotations

from types import SimpleNamespace

from stack import _trace_stack, tracing


def _finished_call(result):
    record = tracing.SpanRecord("t" * 32, "s" * 16, None, "provider inference.openai_chat_completion", 1_000_000)
    request = SimpleNamespace(model="llama")
    _trace_stack._inference_result(record, (request,), {}, result)
    record.end_ns = 3_500_000
    return record.finished()


def test_an_inference_span_carries_model_and_tokens_and_their_metrics():
    usage = SimpleNamespace(prompt_tokens=5, completion_tokens=4)
    span = _finished_call(SimpleNamespace(model="llama-3", usage=usage))
    assert span.attributes == {"gen_ai.request.model": "llama", "gen_ai.operation.name": "chat",
                               "gen_ai.response.model": "llama-3", "gen_ai.usage.input_tokens": 5,
                               "gen_ai.usage.output_tokens": 4}
    metrics = {name: (value, unit, at, tags) for name, value, unit, at, tags in tracing.span_metrics(span)}
    tags = {"model_id": "llama"}
    assert metrics == {"latency_ms": (2.5, "ms", 3_500_000, tags), "prompt_tokens": (5, "tokens", 3_500_000, tags),
                       "completion_tokens": (4, "tokens", 3_500_000, tags),
                       "total_tokens": (9, "tokens", 3_500_000, tags)}


def test_without_usage_only_the_latency_is_a_metric():
    span = _finished_call(None)  # a failed call: no result
    assert [m[0] for m in tracing.span_metrics(span)] == ["latency_ms"]
    assert "gen_ai.usage.input_tokens" not in span.attributes
