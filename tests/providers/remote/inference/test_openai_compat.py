"""remote::openai, remote::vllm and the presets against a test-double upstream:
what reaches the upstream, what comes back, configs."""

from __future__ import annotations

import json

import pytest

from stack.config import load_run_config
from stack.plugins import collect_providers, get_plugin_manager
from stack.registry import ProviderContext
from tests.support import shared_path

from .doubles import answer, chat_chunk, chat_completion, sse, stream

CHAT = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}


def provider(provider_type: str, config: dict) -> str:
    return f"""\
        - provider_id: up
          provider_type: {provider_type}
          config: {json.dumps(config)}
        """


MODELS = """\
    - model_id: m
      provider_id: up
      provider_model_id: upstream-model
      model_type: llm
    - model_id: e
      provider_id: up
      provider_model_id: upstream-embedder
      model_type: embedding
      metadata: {embedding_dimension: 3}
    """

VLLM_EXTRAS = {"top_k": 5, "min_p": 0.1, "repetition_penalty": 1.2, "guided_json": {"type": "object"},
               "chat_template_kwargs": {"enable_thinking": False}, "some_future_vllm_field": [1, 2]}


async def test_vllm_extras_reach_the_upstream_untouched(serve, upstream):
    async with serve(provider("remote::openai", {"url": upstream.url}), MODELS) as client:
        response = await client.post("/v1/chat/completions", json={**CHAT, "temperature": 0.5, **VLLM_EXTRAS})
    assert response.status_code == 200
    sent = upstream.requests[0]
    assert sent.path == "/v1/chat/completions"
    assert sent.body == {"model": "upstream-model", "messages": [{"role": "user", "content": "hi"}],
                         "temperature": 0.5, **VLLM_EXTRAS}


async def test_vllm_applies_its_max_tokens_only_when_the_request_sets_none(serve, upstream):
    config = {"url": upstream.url, "max_tokens": 123, "api_token": "vllm-secret"}
    async with serve(provider("remote::vllm", config), MODELS) as client:
        await client.post("/v1/chat/completions", json={**CHAT, "top_k": 3})
        await client.post("/v1/chat/completions", json={**CHAT, "max_completion_tokens": 7})
        await client.post("/v1/completions", json={"model": "m", "prompt": "Once"})
    first, second, third = upstream.requests
    assert first.body["max_tokens"] == 123 and first.body["top_k"] == 3
    assert "max_tokens" not in second.body and second.body["max_completion_tokens"] == 7
    assert third.path == "/v1/completions" and third.body["max_tokens"] == 123
    assert first.headers["Authorization"] == "Bearer vllm-secret"


async def test_api_key_from_config_and_from_provider_data(serve, upstream):
    async with serve(provider("remote::openai", {"url": upstream.url, "api_key": "sk-config"}), MODELS) as client:
        await client.post("/v1/chat/completions", json=CHAT)
        await client.post("/v1/chat/completions", json=CHAT,
                          headers={"X-LlamaStack-Provider-Data": json.dumps({"openai_api_key": "sk-user"})})
        await client.post("/v1/chat/completions", json=CHAT,  # a key meant for another provider
                          headers={"X-LlamaStack-Provider-Data": json.dumps({"together_api_key": "sk-other"})})
    assert [r.headers["Authorization"] for r in upstream.requests] == ["Bearer sk-config", "Bearer sk-user", "Bearer sk-config"]


@pytest.mark.parametrize("provider_type, data_key, env", [
    ("remote::together", "together_api_key", "TOGETHER_API_KEY"),
    ("remote::fireworks", "fireworks_api_key", "FIREWORKS_API_KEY"),
    ("remote::groq", "groq_api_key", "GROQ_API_KEY"),
])
async def test_presets_take_their_provider_data_key_and_never_send_env_keys_elsewhere(
        serve, upstream, monkeypatch, provider_type, data_key, env):
    monkeypatch.setenv(env, "sk-from-env")  # only for the vendor's own URL: not this one
    async with serve(provider(provider_type, {"url": upstream.url}), MODELS) as client:
        await client.post("/v1/chat/completions", json=CHAT)
        await client.post("/v1/chat/completions", json=CHAT,
                          headers={"X-LlamaStack-Provider-Data": json.dumps({data_key: "sk-user"})})
    assert "Authorization" not in upstream.requests[0].headers
    assert upstream.requests[1].headers["Authorization"] == "Bearer sk-user"


PRESETS = {
    "remote::openai": ("https://api.openai.com/v1", "OPENAI_API_KEY"),
    "remote::together": ("https://api.together.xyz/v1", "TOGETHER_API_KEY"),
    "remote::fireworks": ("https://api.fireworks.ai/inference/v1", "FIREWORKS_API_KEY"),
    "remote::groq": ("https://api.groq.com/openai/v1", "GROQ_API_KEY"),
}


@pytest.mark.parametrize("provider_type", PRESETS)
async def test_preset_default_url_takes_the_key_from_its_variable(provider_type, monkeypatch, tmp_path):
    url, variable = PRESETS[provider_type]
    monkeypatch.setenv(variable, "sk-env")
    spec = collect_providers(get_plugin_manager(load_entry_points=False))[("inference", provider_type)].spec
    impl = await spec.factory(spec.config(), ProviderContext("p", spec, "t", tmp_path))  # connects nowhere
    try:
        assert impl.url == url
        assert impl.client.default_headers["Authorization"] == "Bearer sk-env"
    finally:
        await impl.shutdown()


async def test_stream_chunks_arrive_as_sent(serve, upstream):
    upstream.then(stream([sse(chat_chunk(role="assistant")), sse(chat_chunk("Hel")), sse(chat_chunk("lo")),
                          sse(chat_chunk(finish="stop")), b"data: [DONE]\n\n"]))
    async with serve(provider("remote::openai", {"url": upstream.url}), MODELS) as client:
        response = await client.post("/v1/chat/completions", json={**CHAT, "stream": True})
    parts = [p[6:] for p in response.content.split(b"\n\n") if p]
    assert parts[-1] == b"[DONE]"
    chunks = [json.loads(p) for p in parts[:-1]]
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks) == "Hello"
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert upstream.requests[0].body["stream"] is True


async def test_embeddings(serve, upstream):
    upstream.then(answer(body={"object": "list", "model": "upstream-embedder",
                               "data": [{"object": "embedding", "index": 1, "embedding": [0.0, 1.0, 0.0]},
                                        {"object": "embedding", "index": 0, "embedding": [1.0, 0.0, 0.0]}],
                               "usage": {"prompt_tokens": 4, "total_tokens": 4}}))
    upstream.then(answer(body={"object": "list", "model": "upstream-embedder",
                               "data": [{"object": "embedding", "index": 0, "embedding": [0.5, 0.5, 0.0]}]}))
    async with serve(provider("remote::openai", {"url": upstream.url}), MODELS) as client:
        openai = await client.post("/v1/embeddings", json={"model": "e", "input": ["a", "b"]})
        llama = await client.post("/v1/inference/embeddings", json={"model_id": "e", "contents": ["c"]})
    assert openai.status_code == 200 and [d["index"] for d in openai.json()["data"]] == [1, 0]
    assert upstream.requests[0].path == "/v1/embeddings"
    assert upstream.requests[0].body == {"model": "upstream-embedder", "input": ["a", "b"]}
    assert llama.status_code == 200, llama.text  # usage missing upstream: tolerated
    assert llama.json() == {"embeddings": [[0.5, 0.5, 0.0]]}


async def test_llama_stack_chat_completion_through_the_adapter(serve, upstream):
    upstream.then(answer(body=chat_completion("The answer")))
    upstream.then(stream([sse(chat_chunk(role="assistant")), sse(chat_chunk("4")), sse(chat_chunk(finish="stop")),
                          b"data: [DONE]\n\n"]))
    body = {"model_id": "m", "messages": [{"role": "user", "content": "2+2?"}],
            "sampling_params": {"strategy": {"type": "top_k", "top_k": 2}, "max_tokens": 9},
            "tool_prompt_format": "json"}
    async with serve(provider("remote::openai", {"url": upstream.url}), MODELS) as client:
        response = await client.post("/v1/inference/chat-completion", json=body)
        streamed = await client.post("/v1/inference/chat-completion", json={**body, "stream": True})
    assert response.status_code == 200, response.text
    message = response.json()["completion_message"]
    assert message["content"] == "The answer" and message["stop_reason"] == "end_of_turn"
    sent = upstream.requests[0].body
    assert sent["model"] == "upstream-model" and sent["top_k"] == 2 and sent["max_tokens"] == 9
    events = [json.loads(p[6:]) for p in streamed.content.split(b"\n\n") if p]
    assert [e["event"]["event_type"] for e in events] == ["start", "progress", "complete"]
    assert events[1]["event"]["delta"]["text"] == "4"


async def test_unparseable_upstream_answer_is_502(serve, upstream):
    upstream.then(answer(body={"unexpected": True}), answer(200, "<html>proxy error</html>"))
    async with serve(provider("remote::openai", {"url": upstream.url}), MODELS) as client:
        shape = await client.post("/v1/chat/completions", json=CHAT)
        html = await client.post("/v1/chat/completions", json=CHAT)
    assert shape.status_code == 502 and "unexpected OpenAIChatCompletion: choices" in shape.json()["detail"]
    assert html.status_code == 502 and "not JSON" in html.json()["detail"]


# -- configs ------------------------------------------------------------------------------


@pytest.mark.parametrize("name, provider_type", [
    ("remote-vllm-run.yaml", "remote::vllm"),
    ("ollama-run.yaml", "remote::ollama"),
    ("together-run.yaml", "remote::together"),
])
def test_llama_stack_reference_inference_sections_load_unchanged(name, provider_type, monkeypatch):
    for var in ("INFERENCE_MODEL", "TOGETHER_API_KEY", "VLLM_URL"):
        monkeypatch.setenv(var, "http://vllm.example:8000/v1" if var == "VLLM_URL" else "set-by-test")
    loaded = load_run_config(shared_path("reference", "llama-stack-0.1.0-run-configs", name))
    registry = collect_providers(get_plugin_manager(load_entry_points=False))
    entries = [p for p in loaded.config.providers["inference"] if p.provider_type == provider_type]
    assert entries
    for entry in entries:
        config = registry[("inference", provider_type)].spec.config.model_validate(entry.config)
        assert config.url
    if provider_type == "remote::vllm":
        assert (config.max_tokens, config.api_token.get_secret_value(), config.tls_verify) == (4096, "fake", True)
    if provider_type == "remote::together":
        assert config.api_key.get_secret_value() == "set-by-test"


def test_configs_reject_unknown_keys_and_bad_urls():
    registry = collect_providers(get_plugin_manager(load_entry_points=False))
    openai_config = registry[("inference", "remote::openai")].spec.config
    with pytest.raises(ValueError, match="extra"):
        openai_config.model_validate({"url": "http://x/v1", "colour": "blue"})
    with pytest.raises(ValueError, match="http"):
        openai_config.model_validate({"url": "localhost:8000/v1"})
    assert openai_config.model_validate({"api_key": ""}).api_key is None  # an unset ${env.X:}
