"""remote::ollama against a test double answering the shapes of Ollama's API docs."""

from __future__ import annotations

import asyncio
import base64
import json
import struct

from .doubles import OLLAMA_CHAT_STREAM, OLLAMA_EMBED, ndjson, stream

PROVIDER = """\
    - provider_id: ollama
      provider_type: remote::ollama
      config:
        url: {url}
        read_timeout: 2
        retry_backoff: 0.01
    """
MODELS = """\
    - model_id: llama
      provider_id: ollama
      provider_model_id: llama3.2
      model_type: llm
    - model_id: missing
      provider_id: ollama
      provider_model_id: nope
      model_type: llm
    - model_id: minilm
      provider_id: ollama
      provider_model_id: all-minilm
      model_type: embedding
      metadata: {embedding_dimension: 4}
    """


def sse_events(raw: bytes) -> list:
    return [p[6:].decode() if p[6:] == b"[DONE]" else json.loads(p[6:]) for p in raw.split(b"\n\n") if p]


async def test_chat_maps_request_to_native_api_and_answer_to_openai(serve, ollama):
    body = {"model": "llama", "messages": [{"role": "developer", "content": "Be brief."},
                                            {"role": "user", "content": "Why is the sky blue?"}],
            "temperature": 0.2, "max_tokens": 50, "stop": "\n", "top_k": 4, "repetition_penalty": 1.1,
            "response_format": {"type": "json_object"}, "keep_alive": "5m", "options": {"num_ctx": 4096}}
    async with serve(PROVIDER.format(url=ollama.url), MODELS) as client:
        response = await client.post("/v1/chat/completions", json=body)
    assert response.status_code == 200, response.text
    sent = ollama.requests[0]
    assert sent.path == "/api/chat"
    assert sent.body == {
        "model": "llama3.2", "stream": False, "format": "json", "keep_alive": "5m",
        "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Why is the sky blue?"}],
        "options": {"temperature": 0.2, "top_k": 4, "repeat_penalty": 1.1, "num_predict": 50, "stop": ["\n"], "num_ctx": 4096},
    }
    answer = response.json()
    assert answer["object"] == "chat.completion" and answer["model"] == "llama3.2"
    assert answer["choices"][0]["message"] == {"role": "assistant", "content": "Hello! How are you today?",
                                               "tool_calls": [], "reasoning_content": None}
    assert answer["choices"][0]["finish_reason"] == "stop"
    assert answer["usage"] == {"prompt_tokens": 26, "completion_tokens": 298, "total_tokens": 324}


async def test_tool_calls_come_back_as_openai_tool_calls(serve, ollama):
    tool = {"type": "function", "function": {"name": "get_current_weather", "parameters": {"type": "object"}}}
    async with serve(PROVIDER.format(url=ollama.url), MODELS) as client:
        response = await client.post("/v1/chat/completions", json={
            "model": "llama", "messages": [{"role": "user", "content": "Weather in Paris?"}], "tools": [tool]})
    assert ollama.requests[0].body["tools"] == [tool]
    choice = response.json()["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    call = choice["message"]["tool_calls"][0]
    assert call["function"]["name"] == "get_current_weather"
    assert json.loads(call["function"]["arguments"]) == {"format": "celsius", "location": "Paris, FR"}


async def test_chat_stream_ndjson_becomes_openai_chunks(serve, ollama):
    async with serve(PROVIDER.format(url=ollama.url), MODELS) as client:
        async with asyncio.timeout(10):
            response = await client.post("/v1/chat/completions", json={
                "model": "llama", "messages": [{"role": "user", "content": "Why?"}], "stream": True,
                "stream_options": {"include_usage": True}})
    events = sse_events(response.content)
    assert events[-1] == "[DONE]"
    chunks = events[:-1]
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"]) == "The sky is blue"
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == 282
    assert ollama.requests[0].body["stream"] is True


async def test_llama_stack_routes_chat_stream_and_embeddings(serve, ollama):
    async with serve(PROVIDER.format(url=ollama.url), MODELS) as client:
        chat = await client.post("/v1/inference/chat-completion", json={
            "model_id": "llama", "messages": [{"role": "user", "content": "hi"}], "tool_prompt_format": "json"})
        streamed = await client.post("/v1/inference/chat-completion", json={
            "model_id": "llama", "messages": [{"role": "user", "content": "hi"}], "stream": True})
        embedded = await client.post("/v1/inference/embeddings", json={"model_id": "minilm", "contents": ["a", "b"]})
    assert chat.status_code == 200, chat.text
    assert chat.json()["completion_message"]["content"] == "Hello! How are you today?"
    assert ollama.requests[0].body["options"] == {"temperature": 0.0}  # greedy sampling
    events = [e["event"] for e in sse_events(streamed.content)]
    assert [e["event_type"] for e in events] == ["start", "progress", "progress", "complete"]
    assert "".join(e["delta"].get("text", "") for e in events) == "The sky is blue"
    assert embedded.json() == {"embeddings": OLLAMA_EMBED["embeddings"]}
    assert ollama.requests[2].path == "/api/embed"
    assert ollama.requests[2].body == {"model": "all-minilm", "input": ["a", "b"]}


async def test_openai_embeddings_float_and_base64(serve, ollama):
    async with serve(PROVIDER.format(url=ollama.url), MODELS) as client:
        floats = (await client.post("/v1/embeddings", json={"model": "minilm", "input": ["a", "b"]})).json()
        packed = (await client.post("/v1/embeddings", json={"model": "minilm", "input": "a",
                                                              "encoding_format": "base64"})).json()
    assert [d["embedding"] for d in floats["data"]] == OLLAMA_EMBED["embeddings"]
    assert floats["usage"]["prompt_tokens"] == 8
    decoded = struct.unpack("<4f", base64.b64decode(packed["data"][0]["embedding"]))
    assert [round(x, 6) for x in decoded] == [round(x, 6) for x in OLLAMA_EMBED["embeddings"][0]]


async def test_completion_and_its_stream(serve, ollama):
    async with serve(PROVIDER.format(url=ollama.url), MODELS) as client:
        plain = await client.post("/v1/completions", json={"model": "llama", "prompt": "Why", "max_tokens": 8})
        streamed = await client.post("/v1/completions", json={"model": "llama", "prompt": "Why", "stream": True})
    assert plain.json()["choices"][0]["text"] == "The sky is blue because of Rayleigh scattering."
    assert ollama.requests[0].body == {"model": "llama3.2", "prompt": "Why", "stream": False, "options": {"num_predict": 8}}
    chunks = sse_events(streamed.content)
    assert "".join(c["choices"][0]["text"] for c in chunks[:-1]) == "The sky"
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"


async def test_unknown_model_is_404_naming_it(serve, ollama):
    async with serve(PROVIDER.format(url=ollama.url), MODELS) as client:
        response = await client.post("/v1/chat/completions", json={"model": "missing", "messages": [{"role": "user", "content": "x"}]})
    assert response.status_code == 404
    detail = response.json()["detail"]
    assert "model \"nope\" not found, try pulling it first" in detail and f"{ollama.url}/api/chat" in detail


async def test_unsupported_fields_are_400_naming_them(serve, ollama):
    async with serve(PROVIDER.format(url=ollama.url), MODELS) as client:
        n = await client.post("/v1/chat/completions", json={"model": "llama", "n": 2, "messages": [{"role": "user", "content": "x"}]})
        grammar = await client.post("/v1/inference/chat-completion", json={
            "model_id": "llama", "messages": [{"role": "user", "content": "x"}],
            "response_format": {"type": "grammar", "bnf": {"root": "\"a\""}}})
    assert n.status_code == 400 and n.json()["detail"].startswith("n:")
    assert grammar.status_code == 400 and "guided_grammar" in grammar.json()["detail"]
    assert ollama.requests == []


async def test_stream_cut_before_done_is_an_error_event(serve, ollama):
    ollama.then(stream(ndjson(OLLAMA_CHAT_STREAM[:2]), cut=True, content_type="application/x-ndjson"))
    async with serve(PROVIDER.format(url=ollama.url), MODELS) as client:
        async with asyncio.timeout(10):
            response = await client.post("/v1/chat/completions", json={
                "model": "llama", "messages": [{"role": "user", "content": "x"}], "stream": True})
    events = sse_events(response.content)
    assert events[0]["choices"][0]["delta"]["content"] == "The"
    assert events[-1]["error"]["status"] == 502 and ollama.url in events[-1]["error"]["message"]


def test_url_of_an_openai_style_config_is_accepted():
    from providers.remote.inference.ollama import OllamaImplConfig

    assert OllamaImplConfig().url == "http://localhost:11434"
    assert OllamaImplConfig(url="http://gpu-box:11434/v1/").url == "http://gpu-box:11434"
