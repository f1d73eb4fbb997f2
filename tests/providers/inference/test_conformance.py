"""One conformance suite for every chat provider: the same requests through the
whole stack (routes, router, provider), in-process. Per-provider features
(tools, grammars, faults) are tested beside each provider."""

from __future__ import annotations

import json

import pytest

from tests.support import serve_stack, smollm2_path


def llama_cpp_yaml(_request) -> str:
    return f"""\
- provider_id: under-test
  provider_type: inline::llama-cpp
  config:
    n_threads: 1
    models:
      m: {{path: {json.dumps(str(smollm2_path()))}}}
"""


def transformers_yaml(request) -> str:
    from tests.support import build_tiny_llama

    tiny = build_tiny_llama(request.getfixturevalue("tmp_path_factory").mktemp("tiny"))
    return f"""\
- provider_id: under-test
  provider_type: inline::transformers
  config:
    models:
      m: {{path: {json.dumps(str(tiny.path))}}}
"""


def remote_openai_yaml(request) -> str:
    url = request.getfixturevalue("llama_server")
    # llama.cpp's server serves whatever model name it is asked for
    return f"""\
- provider_id: under-test
  provider_type: remote::openai
  config:
    url: {url}
"""


PROVIDERS = {"llama-cpp": llama_cpp_yaml, "transformers": transformers_yaml, "remote-openai": remote_openai_yaml}
# a remote provider relays the upstream's stream as it is: llama.cpp's server
# sends no usage chunk, and polystack does not make numbers up
STREAM_USAGE = {"llama-cpp": True, "transformers": True, "remote-openai": False}
MODELS = "- {model_id: chat-model, provider_id: under-test, provider_model_id: m, model_type: llm}\n"
USER = [{"role": "user", "content": "Say something."}]


@pytest.fixture(params=sorted(PROVIDERS))
async def client(request, tmp_path, monkeypatch):
    monkeypatch.setenv("POLYSTACK_HOME", str(tmp_path))
    async with serve_stack(tmp_path, PROVIDERS[request.param](request), MODELS) as c:
        c.provider = request.param
        yield c


def sse(response) -> list[dict]:
    events = [line[len("data: "):] for line in response.text.splitlines() if line.startswith("data: ")]
    return [json.loads(e) for e in events if e != "[DONE]"]


async def test_llama_stack_chat(client):
    r = await client.post("/v1/inference/chat-completion", json={
        "model_id": "chat-model", "messages": USER, "sampling_params": {"max_tokens": 8}})
    assert r.status_code == 200, r.text
    message = r.json()["completion_message"]
    assert message["role"] == "assistant" and isinstance(message["content"], str)
    assert message["stop_reason"] in ("end_of_turn", "end_of_message", "out_of_tokens")


async def test_llama_stack_chat_stream(client):
    r = await client.post("/v1/inference/chat-completion", json={
        "model_id": "chat-model", "messages": USER, "sampling_params": {"max_tokens": 8}, "stream": True})
    assert r.status_code == 200, r.text
    events = [e["event"] for e in sse(r)]
    assert events[0]["event_type"] == "start" and events[-1]["event_type"] == "complete"
    assert events[-1]["stop_reason"] in ("end_of_turn", "end_of_message", "out_of_tokens")


async def test_llama_stack_completion(client):
    r = await client.post("/v1/inference/completion", json={
        "model_id": "chat-model", "content": "Once upon a time", "sampling_params": {"max_tokens": 8}})
    assert r.status_code == 200, r.text
    assert isinstance(r.json()["content"], str)


async def test_openai_chat_usage_and_max_tokens(client):
    r = await client.post("/v1/chat/completions", json={"model": "chat-model", "messages": USER, "max_tokens": 6})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["object"] == "chat.completion"
    assert body["choices"][0]["message"]["role"] == "assistant"
    usage = body["usage"]
    assert 0 < usage["completion_tokens"] <= 6
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


async def test_openai_stream_ends_with_usage_and_done(client):
    r = await client.post("/v1/chat/completions", json={
        "model": "chat-model", "messages": USER, "max_tokens": 6, "stream": True, "stream_options": {"include_usage": True}})
    assert r.status_code == 200, r.text
    assert r.text.rstrip().endswith("data: [DONE]")
    chunks = sse(r)
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    if STREAM_USAGE[client.provider]:
        assert chunks[-1]["usage"]["completion_tokens"] > 0


async def test_unknown_model_is_404_naming_it(client):
    r = await client.post("/v1/chat/completions", json={"model": "nope", "messages": USER})
    assert r.status_code == 404
    assert "'nope' not found" in r.json()["detail"]
