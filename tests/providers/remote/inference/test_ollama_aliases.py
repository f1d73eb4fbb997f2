"""remote::ollama takes llama-stack's model ids (``meta-llama/...``) and sends Ollama's tags."""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager

import httpx
import pytest
from pydantic import BaseModel, ConfigDict

import stack
from providers.remote.inference.ollama._models import OLLAMA_ALIASES
from stack.apis import get_protocol, iter_webmethods
from stack.errors import NotSupportedError
from stack.registry import ProviderSpec
from tests.support import serve_app, shared_path

from .doubles import FakeOllama

PROVIDER = """\
    - provider_id: ollama
      provider_type: remote::ollama
      config:
        url: {url}
        retry_backoff: 0.01
    """
LLAMA_3B = "meta-llama/Llama-3.2-3B-Instruct"


def llm(model_id: str, provider_model_id: str | None = None) -> str:
    line = f"  provider_model_id: {provider_model_id}\n" if provider_model_id else ""
    return f"- model_id: {model_id}\n  provider_id: ollama\n{line}  model_type: llm\n"


@asynccontextmanager
async def pulled(*tags: str):
    server = await FakeOllama(tags=tags).start()
    try:
        yield server
    finally:
        await server.stop()


async def chat(client, model: str) -> httpx.Response:
    return await client.post("/v1/chat/completions", json={"model": model, "messages": [{"role": "user", "content": "hi"}]})


def sent_models(ollama: FakeOllama) -> list[str]:
    return [r.body["model"] for r in ollama.requests if r.path == "/api/chat"]


async def test_llama_id_chats_through_the_ollama_tag_and_is_listed_with_it(serve):
    async with pulled("llama3.2:3b-instruct-fp16", "llama3.2:3b") as ollama:
        async with serve(PROVIDER.format(url=ollama.url), llm(LLAMA_3B)) as client:
            listed = (await client.get("/v1/models")).json()["data"]
            response = await chat(client, LLAMA_3B)
    assert response.status_code == 200, response.text
    assert sent_models(ollama) == ["llama3.2:3b-instruct-fp16"]
    assert [(m["identifier"], m["provider_resource_id"]) for m in listed] == [(LLAMA_3B, "llama3.2:3b-instruct-fp16")]


async def test_an_accepted_tag_serves_when_the_preferred_one_is_not_pulled(serve):
    async with pulled("llama3.2:3b") as ollama:
        async with serve(PROVIDER.format(url=ollama.url), llm("Llama3.2-3B-Instruct")) as client:
            response = await chat(client, "Llama3.2-3B-Instruct")  # llama-models' spelling of the same id
    assert response.status_code == 200, response.text
    assert sent_models(ollama) == ["llama3.2:3b"]


async def test_missing_tag_names_the_pull_at_start_up_and_on_register(serve, caplog):
    async with pulled("llama3.2:latest") as ollama:
        with caplog.at_level(logging.ERROR):
            async with serve(PROVIDER.format(url=ollama.url), llm(LLAMA_3B)) as client:
                listed = (await client.get("/v1/models")).json()["data"]
                posted = await client.post("/v1/models", json={"model_id": "meta-llama/Llama-3.1-8B-Instruct"})
                unknown = await chat(client, LLAMA_3B)
    assert listed == []  # the server started without it
    assert "`ollama pull llama3.2:3b-instruct-fp16`" in caplog.text
    assert posted.status_code == 400
    detail = posted.json()["detail"]
    assert detail.startswith("model_id: ") and "`ollama pull llama3.1:8b-instruct-fp16`" in detail
    assert f"Ollama at {ollama.url} has not pulled meta-llama/Llama-3.1-8B-Instruct" in detail
    assert unknown.status_code == 404 and sent_models(ollama) == []


async def test_explicit_provider_model_id_and_other_names_pass_as_is(serve):
    models = llm(LLAMA_3B, "llama3.2") + llm("my-finetune:q4")
    async with pulled("llama3.2:latest") as ollama:
        async with serve(PROVIDER.format(url=ollama.url), models) as client:
            explicit = await chat(client, LLAMA_3B)
            own = await chat(client, "my-finetune:q4")
            posted = await client.post("/v1/models", json={"model_id": "not-pulled-either"})
    assert explicit.status_code == 200, explicit.text
    assert sent_models(ollama) == ["llama3.2", "my-finetune:q4"]
    assert not any(r.path == "/api/tags" for r in ollama.requests)  # nothing to resolve, nothing checked
    # a name Ollama does not have is its 404, relayed
    assert own.status_code == 404 and 'model "my-finetune:q4" not found, try pulling it first' in own.json()["detail"]
    assert posted.status_code == 200 and posted.json()["provider_resource_id"] == "not-pulled-either"


async def test_ollama_down_at_start_up_warns_and_serves_the_preferred_tag(serve, caplog):
    async with pulled() as ollama:
        url = ollama.url
    with caplog.at_level(logging.WARNING):
        async with serve(PROVIDER.format(url=url), llm("meta-llama/Llama-Guard-3-1B")) as client:
            listed = (await client.get("/v1/models")).json()["data"]
            response = await chat(client, "meta-llama/Llama-Guard-3-1B")
    assert [m["provider_resource_id"] for m in listed] == ["llama-guard3:1b"]
    assert "cannot check that Ollama has llama-guard3:1b" in caplog.text
    assert response.status_code == 502 and "cannot reach upstream" in response.json()["detail"]


def test_the_alias_table_covers_llama_stack_s_ollama_models():
    ids = {a.llama_model: a.preferred for a in OLLAMA_ALIASES}
    assert ids == {
        "meta-llama/Llama-3.1-8B-Instruct": "llama3.1:8b-instruct-fp16",
        "meta-llama/Llama-3.1-70B-Instruct": "llama3.1:70b-instruct-fp16",
        "meta-llama/Llama-3.1-405B-Instruct-FP8": "llama3.1:405b-instruct-fp16",
        "meta-llama/Llama-3.2-1B-Instruct": "llama3.2:1b-instruct-fp16",
        "meta-llama/Llama-3.2-3B-Instruct": "llama3.2:3b-instruct-fp16",
        "meta-llama/Llama-3.2-11B-Vision-Instruct": "llama3.2-vision:11b-instruct-fp16",
        "meta-llama/Llama-3.2-90B-Vision-Instruct": "llama3.2-vision:90b-instruct-fp16",
        "meta-llama/Llama-3.3-70B-Instruct": "llama3.3:70b",
        "meta-llama/Llama-Guard-3-8B": "llama-guard3:8b",
        "meta-llama/Llama-Guard-3-1B": "llama-guard3:1b",
    }


# -- llama-stack 0.1.0's ollama-run.yaml, unchanged ----------------------------------------


class _AnyConfig(BaseModel):
    model_config = ConfigDict(extra="allow")


class NotBuiltYet:
    """Throwaway plugin: a stand-in for each provider type the file names that polystack
    does not have yet (telemetry, eval, ...), so the rest of the file can start."""

    def __init__(self, missing: set[tuple[str, str]]) -> None:
        self.missing = missing

    @stack.hookimpl
    def register_providers(self, register):
        for api, provider_type in sorted(self.missing):
            register(ProviderSpec(api=api, provider_type=provider_type, config=_AnyConfig, factory=_stand_in(api)))


def _stand_in(api: str):
    async def refuse(*args, **kwargs):
        raise NotSupportedError(f"{api} is not built yet")

    cls = type(f"NotBuilt_{api}", (), {name: refuse for name, _wm, _fn in iter_webmethods(get_protocol(api))})

    async def create(config, context):
        return cls()

    return create


@pytest.fixture
def reference_ollama_stack(tmp_path, monkeypatch):
    from stack.config import load_run_config
    from stack.plugins import collect_providers, get_plugin_manager
    from stack.resolver import plan
    from stack.server import create_app

    @asynccontextmanager
    async def start(name: str, ollama: FakeOllama, **env: str):
        for var, value in {"POLYSTACK_HOME": str(tmp_path), "SQLITE_STORE_DIR": str(tmp_path),
                           "SQLITE_DB_PATH": str(tmp_path / "trace.db"), "OLLAMA_URL": ollama.url,
                           # as `polystack run` sets it: braintrust judges through the server's own port
                           "POLYSTACK_PORT": "8321", **env}.items():
            monkeypatch.setenv(var, value)
        loaded = load_run_config(shared_path("reference", "llama-stack-0.1.0-run-configs", name))
        pm = get_plugin_manager(load_entry_points=False)
        known = collect_providers(pm)
        missing = {(api, p.provider_type) for api, entries in loaded.config.providers.items() for p in entries
                   if (api, p.provider_type) not in known}
        pm.register(NotBuiltYet(missing), name="not-built-yet")
        async with serve_app(create_app(plan(loaded, collect_providers(pm)))) as client:
            yield client

    return start


@pytest.mark.parametrize("name", ["ollama-run.yaml", "ollama-run-with-safety.yaml"])
async def test_llama_stack_ollama_run_yaml_chats_through_the_alias(reference_ollama_stack, name):
    guard = "meta-llama/Llama-Guard-3-1B"
    async with pulled("llama3.2:3b-instruct-fp16", "llama-guard3:1b") as ollama:
        async with reference_ollama_stack(name, ollama, INFERENCE_MODEL=LLAMA_3B, SAFETY_MODEL=guard) as client:
            listed = (await client.get("/v1/models")).json()["data"]
            shields = (await client.get("/v1/shields")).json()["data"]
            response = await client.post("/v1/inference/chat-completion", json={
                "model_id": LLAMA_3B, "messages": [{"role": "user", "content": "hi"}]})
    served = {m["identifier"]: m["provider_resource_id"] for m in listed if m["provider_id"] == "ollama"}
    if name == "ollama-run.yaml":
        assert served == {LLAMA_3B: "llama3.2:3b-instruct-fp16"}
    else:
        assert served == {LLAMA_3B: "llama3.2:3b-instruct-fp16", guard: "llama-guard3:1b"}
        assert guard in [s["identifier"] for s in shields]
    assert response.status_code == 200, response.text
    assert response.json()["completion_message"]["content"] == "Hello! How are you today?"
    assert sent_models(ollama) == ["llama3.2:3b-instruct-fp16"]
