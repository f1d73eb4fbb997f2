"""remote::tgi, remote::hf::serverless, remote::hf::endpoint, remote::sambanova, remote::nvidia and
remote::cerebras against test doubles that answer the services' documented shapes, errors included."""

from __future__ import annotations

import json

import pytest

from stack.plugins import collect_providers, get_plugin_manager
from stack.registry import ProviderContext

from .doubles import (
    CEREBRAS_BAD_KEY,
    CEREBRAS_RATE_LIMIT,
    HF_BAD_TOKEN,
    HF_MODEL_LOADING,
    HF_RATE_LIMIT,
    NVIDIA_CATALOG_422,
    NVIDIA_CATALOG_429,
    NVIDIA_NIM_ERROR,
    SAMBANOVA_BAD_MODEL,
    SAMBANOVA_RATE_LIMIT,
    TGI_OVERLOADED,
    TGI_VALIDATION_ERROR,
    FakeHFEndpoints,
    answer,
)

FAST = {"max_retries": 0, "retry_backoff": 0.01, "retry_backoff_max": 0.02}
REPO = "meta-llama/Llama-3.2-3B-Instruct"


def provider(provider_type: str, config: dict) -> str:
    return f"""\
        - provider_id: up
          provider_type: {provider_type}
          config: {json.dumps(config)}
        """


def model(model_id: str, provider_model_id: str | None = None) -> str:
    line = f"      provider_model_id: {provider_model_id}\n" if provider_model_id else ""
    return f"    - model_id: {model_id}\n      provider_id: up\n{line}      model_type: llm\n"


def chat(model_id: str) -> dict:
    return {"model": model_id, "messages": [{"role": "user", "content": "hi"}]}


def host(upstream) -> str:
    return upstream.url.removesuffix("/v1")


# -- what reaches each service --------------------------------------------------------------------


async def test_tgi_speaks_the_messages_api_under_v1_with_its_token(serve, upstream):
    config = {"url": host(upstream), "api_token": "tgi-secret"}
    async with serve(provider("remote::tgi", config), model(REPO)) as client:
        response = await client.post("/v1/chat/completions", json=chat(REPO))
    assert response.status_code == 200
    assert response.json()["choices"][0]["message"]["content"] == "Hello from the test double"
    sent = upstream.requests[0]
    assert sent.path == "/v1/chat/completions"
    assert sent.headers["Authorization"] == "Bearer tgi-secret"
    assert sent.body["model"] == REPO


async def test_tgi_maps_the_llama_descriptor_to_the_hf_repo(serve, upstream):
    async with serve(provider("remote::tgi", {"url": host(upstream)}), model("Llama3.2-3B-Instruct")) as client:
        listed = await client.get("/v1/models")
        await client.post("/v1/chat/completions", json=chat("Llama3.2-3B-Instruct"))
    assert {m["identifier"]: m["provider_resource_id"] for m in listed.json()["data"]} == {"Llama3.2-3B-Instruct": REPO}
    assert upstream.requests[0].body["model"] == REPO
    assert "Authorization" not in upstream.requests[0].headers


async def test_tgi_has_no_embeddings_and_says_so(serve, upstream):
    models = model(REPO) + "    - model_id: e\n      provider_id: up\n      model_type: embedding\n" \
        "      metadata: {embedding_dimension: 3}\n"
    async with serve(provider("remote::tgi", {"url": host(upstream)}), models) as client:
        response = await client.post("/v1/embeddings", json={"model": "e", "input": "x"})
    assert response.status_code == 501
    assert "sentence-transformers" in response.json()["detail"]
    assert upstream.requests == []


async def test_hf_serverless_calls_the_repo_url_and_serves_only_that_repo(serve, upstream):
    config = {"huggingface_repo": REPO, "api_token": "hf_user", "api_url": host(upstream), **FAST}
    async with serve(provider("remote::hf::serverless", config), model(REPO)) as client:
        ok = await client.post("/v1/chat/completions", json=chat(REPO))
        other = await client.post("/v1/models", json={"model_id": "meta-llama/Llama-3.1-8B-Instruct",
                                                       "provider_id": "up"})
    assert ok.status_code == 200
    assert upstream.requests[0].path == f"/models/{REPO}/v1/chat/completions"
    assert upstream.requests[0].headers["Authorization"] == "Bearer hf_user"
    assert other.status_code == 400
    assert f"serves only '{REPO}'" in other.json()["detail"]


async def test_hf_serverless_waits_out_a_loading_model(serve, upstream):
    upstream.then(answer(503, HF_MODEL_LOADING))
    config = {"huggingface_repo": REPO, "api_url": host(upstream), **FAST, "max_retries": 1}
    async with serve(provider("remote::hf::serverless", config), model(REPO)) as client:
        response = await client.post("/v1/chat/completions", json=chat(REPO))
    assert response.status_code == 200
    assert len(upstream.requests) == 2


@pytest.mark.parametrize("status, body, expected_status, expected_text", [
    (503, HF_MODEL_LOADING, 502, "is currently loading"),
    (429, HF_RATE_LIMIT, 502, "rate-limiting (429): Rate limit reached"),
    (401, HF_BAD_TOKEN, 502, "rejected the API key (401): Invalid credentials"),
])
async def test_hf_serverless_errors_reach_the_user_with_the_service_message(
        serve, upstream, status, body, expected_status, expected_text):
    upstream.default = answer(status, body)
    config = {"huggingface_repo": REPO, "api_url": host(upstream), **FAST}
    async with serve(provider("remote::hf::serverless", config), model(REPO)) as client:
        response = await client.post("/v1/chat/completions", json=chat(REPO))
    assert response.status_code == expected_status
    assert expected_text in response.json()["detail"]


@pytest.mark.parametrize("status, body, expected_status, expected_text", [
    (422, TGI_VALIDATION_ERROR, 422, "Input validation error"),
    (429, TGI_OVERLOADED, 502, "rate-limiting (429): Model is overloaded"),
])
async def test_tgi_errors(serve, upstream, status, body, expected_status, expected_text):
    upstream.default = answer(status, body)
    async with serve(provider("remote::tgi", {"url": host(upstream), **FAST}), model(REPO)) as client:
        response = await client.post("/v1/inference/chat-completion", json={
            "model_id": REPO, "messages": [{"role": "user", "content": "hi"}]})
    assert response.status_code == expected_status
    assert expected_text in response.json()["detail"]


async def test_a_429_is_retried_after_the_delay_the_service_asks_for(serve, upstream):
    upstream.then(answer(429, SAMBANOVA_RATE_LIMIT, headers={"Retry-After": "0"}))
    config = {"url": upstream.url, "api_key": "sn", **FAST, "max_retries": 1}
    async with serve(provider("remote::sambanova", config), model("m", "Meta-Llama-3.1-8B-Instruct")) as client:
        response = await client.post("/v1/chat/completions", json=chat("m"))
    assert response.status_code == 200
    assert len(upstream.requests) == 2


# -- HF Inference Endpoints -----------------------------------------------------------------------


@pytest.fixture
async def hf():
    server = await FakeHFEndpoints(endpoints={"alice/llama-3b": "running", "acme/paused-one": "paused"}).start()
    yield server
    await server.stop()


def endpoint_config(hf, name: str) -> dict:
    return {"endpoint_name": name, "api_token": "hf_alice", "endpoints_api_url": hf.url, "hub_url": hf.url, **FAST}


async def test_hf_endpoint_finds_its_url_in_the_token_users_namespace(serve, hf):
    async with serve(provider("remote::hf::endpoint", endpoint_config(hf, "llama-3b")), model(REPO)) as client:
        first = await client.post("/v1/chat/completions", json=chat(REPO))
        second = await client.post("/v1/chat/completions", json=chat(REPO))
    assert first.status_code == second.status_code == 200
    paths = [r.path for r in hf.requests]
    # the lookup happens once; every request carries the token
    assert paths == ["/api/whoami-v2", "/v2/endpoint/alice/llama-3b", "/v1/chat/completions", "/v1/chat/completions"]
    assert {r.headers["Authorization"] for r in hf.requests} == {"Bearer hf_alice"}


async def test_hf_endpoint_with_a_namespace_skips_whoami(serve, hf):
    async with serve(provider("remote::hf::endpoint", endpoint_config(hf, "alice/llama-3b")), model(REPO)) as client:
        response = await client.post("/v1/chat/completions", json=chat(REPO))
    assert response.status_code == 200
    assert [r.path for r in hf.requests][0] == "/v2/endpoint/alice/llama-3b"


async def test_a_paused_endpoint_is_503_naming_its_state(serve, hf):
    async with serve(provider("remote::hf::endpoint", endpoint_config(hf, "acme/paused-one")), model(REPO)) as client:
        response = await client.post("/v1/chat/completions", json=chat(REPO))
        health = await client.get("/v1/health")
    assert response.status_code == 503
    assert "'acme/paused-one' is 'paused'" in response.json()["detail"]
    assert health.json()["providers"]["up"]["status"] == "unreachable"


async def test_an_unknown_endpoint_is_404(serve, hf):
    async with serve(provider("remote::hf::endpoint", endpoint_config(hf, "alice/nope")), model(REPO)) as client:
        response = await client.post("/v1/chat/completions", json=chat(REPO))
    assert response.status_code == 404
    assert "Endpoint alice/nope not found" in response.json()["detail"]


# -- SambaNova, NVIDIA, Cerebras -------------------------------------------------------------------


@pytest.mark.parametrize("provider_type, config_of, path, llama_id, service_name", [
    ("remote::sambanova", lambda u: {"url": u.url, "api_key": "k"}, "/v1/chat/completions",
     "meta-llama/Llama-3.1-8B-Instruct", "Meta-Llama-3.1-8B-Instruct"),
    ("remote::nvidia", lambda u: {"url": host(u), "api_key": "k"}, "/v1/chat/completions",
     "meta-llama/Llama-3.1-70B-Instruct", "meta/llama-3.1-70b-instruct"),
    ("remote::nvidia", lambda u: {"url": u.url, "api_key": "k", "append_api_version": False}, "/v1/chat/completions",
     "Llama3.2-1B-Instruct", "meta/llama-3.2-1b-instruct"),
    ("remote::cerebras", lambda u: {"base_url": host(u), "api_key": "k"}, "/v1/chat/completions",
     "meta-llama/Llama-3.3-70B-Instruct", "llama-3.3-70b"),
])
async def test_llama_ids_become_the_services_names(serve, upstream, provider_type, config_of, path, llama_id, service_name):
    async with serve(provider(provider_type, config_of(upstream)), model(llama_id)) as client:
        response = await client.post("/v1/chat/completions", json=chat(llama_id))
    assert response.status_code == 200
    assert upstream.requests[0].path == path
    assert upstream.requests[0].body["model"] == service_name
    assert upstream.requests[0].headers["Authorization"] == "Bearer k"


async def test_sambanova_takes_a_key_from_provider_data(serve, upstream):
    async with serve(provider("remote::sambanova", {"url": upstream.url, "api_key": "cfg"}), model("m", "x")) as client:
        await client.post("/v1/chat/completions", json=chat("m"),
                          headers={"X-LlamaStack-Provider-Data": json.dumps({"sambanova_api_key": "user"})})
    assert upstream.requests[0].headers["Authorization"] == "Bearer user"


@pytest.mark.parametrize("provider_type, config_of, status, body, expected_status, expected_text", [
    ("remote::sambanova", lambda u: {"url": u.url}, 429, SAMBANOVA_RATE_LIMIT, 502, "rate-limiting (429): Rate limit exceeded"),
    ("remote::sambanova", lambda u: {"url": u.url}, 404, SAMBANOVA_BAD_MODEL, 404, "Model not found"),
    ("remote::nvidia", lambda u: {"url": host(u)}, 400, NVIDIA_NIM_ERROR, 400, "maximum context length is 8192"),
    ("remote::nvidia", lambda u: {"url": host(u)}, 422, NVIDIA_CATALOG_422, 422, "field required"),
    ("remote::nvidia", lambda u: {"url": host(u)}, 429, NVIDIA_CATALOG_429, 502, "rate-limiting (429)"),
    ("remote::cerebras", lambda u: {"base_url": host(u)}, 429, CEREBRAS_RATE_LIMIT, 502, "Requests per minute limit"),
    ("remote::cerebras", lambda u: {"base_url": host(u)}, 401, CEREBRAS_BAD_KEY, 502, "rejected the API key (401): Wrong API Key"),
])
async def test_service_errors_reach_the_user(serve, upstream, provider_type, config_of, status, body,
                                             expected_status, expected_text):
    upstream.default = answer(status, body)
    async with serve(provider(provider_type, {**config_of(upstream), **FAST}), model("m", "x")) as client:
        response = await client.post("/v1/chat/completions", json=chat("m"))
    assert response.status_code == expected_status
    assert expected_text in response.json()["detail"]


def spec_of(provider_type: str):
    return collect_providers(get_plugin_manager(load_entry_points=False))[("inference", provider_type)].spec


async def test_nvidia_hosted_catalog_without_a_key_fails_at_start(monkeypatch, tmp_path):
    monkeypatch.delenv("NVIDIA_API_KEY", raising=False)
    spec = spec_of("remote::nvidia")
    with pytest.raises(Exception, match="api_key is required for NVIDIA's hosted catalog"):
        await spec.factory(spec.config(), ProviderContext("p", spec, "t", tmp_path))


@pytest.mark.parametrize("provider_type, variable, url", [
    ("remote::nvidia", "NVIDIA_API_KEY", "https://integrate.api.nvidia.com/v1"),
    ("remote::cerebras", "CEREBRAS_API_KEY", "https://api.cerebras.ai/v1"),
    ("remote::sambanova", "SAMBANOVA_API_KEY", "https://api.sambanova.ai/v1"),
])
async def test_default_urls_take_the_key_from_their_variable(monkeypatch, tmp_path, provider_type, variable, url):
    monkeypatch.setenv(variable, "from-env")
    spec = spec_of(provider_type)
    impl = await spec.factory(spec.config(), ProviderContext("p", spec, "t", tmp_path))  # connects nowhere
    try:
        assert impl.url == url
        assert impl.client.default_headers["Authorization"] == "Bearer from-env"
    finally:
        await impl.shutdown()


def test_nvidia_timeout_is_the_read_timeout_unless_that_is_set():
    config = spec_of("remote::nvidia").config
    assert config(timeout=30).read_timeout == 30
    assert config(timeout=30, read_timeout=5).read_timeout == 5


@pytest.mark.parametrize("provider_type, config, field", [
    ("remote::tgi", {}, "url"),
    ("remote::tgi", {"url": "localhost:8080"}, "url"),
    ("remote::hf::serverless", {"api_token": "x"}, "huggingface_repo"),
    ("remote::hf::endpoint", {"endpoint_name": "a/b/c"}, "endpoint_name"),
    ("remote::cerebras", {"url": "https://api.cerebras.ai"}, "url"),  # 0.1.0 names it base_url
    ("remote::nvidia", {"timeout": 0}, "timeout"),
])
def test_bad_configs_name_the_field(provider_type, config, field):
    from pydantic import ValidationError

    with pytest.raises(ValidationError) as err:
        spec_of(provider_type).config(**config)
    assert field in {str(e["loc"][0]) for e in err.value.errors()}
