"""Both safety providers in a real stack, in-process over HTTP: shields from the
run config and registered through the API, run-shield routed by shield id.

Inference is ``remote::scripted``, a test double registered by a throwaway
plugin object: it answers canned guard verdicts and records the model asked.
"""

from __future__ import annotations

from contextlib import asynccontextmanager

import httpx
import pytest
from pydantic import BaseModel, ConfigDict

import stack
from stack.apis.inference import ChatCompletionResponse, CompletionMessage, EmbeddingsResponse
from stack.registry import ProviderSpec

RUN_CONFIG = """\
version: '2'
image_name: safety-test
apis: [inference, safety]
providers:
  inference:
  - provider_id: scripted
    provider_type: remote::scripted
    config: {}
  safety:
  - provider_id: llama-guard
    provider_type: inline::llama-guard
    config: {}
  - provider_id: pattern-guard
    provider_type: inline::pattern-guard
    config:
      rules:
      - name: codenames
        keywords: [bluebird]
        violation_level: warn
models:
- model_id: Llama-Guard-3-1B
  provider_model_id: guard-model-on-the-upstream
  model_type: llm
- model_id: embedder
  model_type: embedding
  metadata: {embedding_dimension: 8}
shields:
- shield_id: Llama-Guard-3-1B
  provider_id: llama-guard
- shield_id: pii
  provider_id: pattern-guard
  params: {detectors: [email, credit_card], rules: []}
"""


class ScriptedInference:
    """Test double: chat_completion answers the next canned reply ("safe" when none are left)."""

    def __init__(self) -> None:
        self.replies: list[str] = []
        self.model_ids: list[str] = []

    async def chat_completion(self, model_id, messages, **kwargs):
        self.model_ids.append(model_id)
        reply = self.replies.pop(0) if self.replies else "safe"
        return ChatCompletionResponse(completion_message=CompletionMessage(content=reply, stop_reason="end_of_turn"))

    async def completion(self, model_id, content, **kwargs):
        raise AssertionError("not used")

    async def embeddings(self, model_id, contents):
        return EmbeddingsResponse(embeddings=[[0.0] * 8 for _ in contents])


class _NoConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ScriptedInferencePlugin:
    """A throwaway plugin object registering ``remote::scripted``; it keeps the instance for the test."""

    def __init__(self) -> None:
        self.inference = ScriptedInference()

    @stack.hookimpl
    def register_providers(self, register):
        async def create(config, context):
            return self.inference

        register(ProviderSpec(api="inference", provider_type="remote::scripted", config=_NoConfig, factory=create))


@asynccontextmanager
async def serve(tmp_path, monkeypatch, plugin: ScriptedInferencePlugin):
    from stack.config import load_run_config
    from stack.plugins import collect_providers, get_plugin_manager
    from stack.resolver import plan
    from stack.server import create_app

    monkeypatch.setenv("POLYSTACK_HOME", str(tmp_path / "home"))
    path = tmp_path / "run.yaml"
    path.write_text(RUN_CONFIG)
    pm = get_plugin_manager(load_entry_points=False)
    pm.register(plugin, name="scripted-inference-test-double")
    try:
        app = create_app(plan(load_run_config(path), collect_providers(pm)))
    finally:
        pm.unregister(name="scripted-inference-test-double")
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://test", timeout=30) as client:
            yield client


@pytest.fixture
async def client(tmp_path, monkeypatch):
    plugin = ScriptedInferencePlugin()
    async with serve(tmp_path, monkeypatch, plugin) as client:
        client.inference = plugin.inference
        yield client


async def run_shield(client, shield_id: str, text: str, params: dict | None = None) -> httpx.Response:
    return await client.post("/v1/safety/run-shield", json={
        "shield_id": shield_id, "messages": [{"role": "user", "content": text}], "params": params or {}})


async def test_run_config_shields_are_listed(client):
    shields = {s["identifier"]: s for s in (await client.get("/v1/shields")).json()["data"]}
    assert shields["Llama-Guard-3-1B"]["provider_id"] == "llama-guard"
    assert shields["pii"]["params"] == {"detectors": ["email", "credit_card"], "rules": []}


async def test_llama_guard_asks_the_guard_model_through_the_inference_router(client):
    client.inference.replies = ["unsafe\nS9"]
    response = await run_shield(client, "Llama-Guard-3-1B", "how do I build a bomb?")
    assert response.status_code == 200
    assert response.json()["violation"] == {
        "violation_level": "error", "user_message": "I can't answer that. Can I help with something else?",
        "metadata": {"violation_type": "S9", "categories": {"S9": "Indiscriminate Weapons"}}}
    # the stack's model id went through the router, which passed on the upstream's own name
    assert client.inference.model_ids == ["guard-model-on-the-upstream"]
    assert (await run_shield(client, "Llama-Guard-3-1B", "hello")).json() == {"violation": None}


async def test_a_garbled_verdict_is_a_502(client):
    client.inference.replies = ["Sure! Here is a poem about safety."]
    response = await run_shield(client, "Llama-Guard-3-1B", "hello")
    assert response.status_code == 502
    assert "it said: 'Sure! Here is a poem about safety.'" in response.json()["detail"]


async def test_a_llama_guard_shield_must_name_a_registered_llm(client):
    response = await client.post("/v1/shields", json={
        "shield_id": "guard-2", "provider_id": "llama-guard", "provider_shield_id": "Llama-Guard-3-8B"})
    assert response.status_code == 400
    detail = response.json()["detail"]
    assert detail.startswith("provider_shield_id: 'Llama-Guard-3-8B' is not a registered model")
    assert detail.endswith("(registered LLMs: 'Llama-Guard-3-1B')")
    response = await client.post("/v1/shields", json={
        "shield_id": "guard-3", "provider_id": "llama-guard", "provider_shield_id": "embedder"})
    assert response.status_code == 400
    assert "'embedder' is an embedding model" in response.json()["detail"]
    ids = [s["identifier"] for s in (await client.get("/v1/shields")).json()["data"]]
    assert "guard-2" not in ids and "guard-3" not in ids


async def test_pattern_guard_shields_apply_their_params(client):
    violation = (await run_shield(client, "pii", "bluebird, card 4111 1111 1111 1111")).json()["violation"]
    assert violation["metadata"]["violation_type"] == "credit_card"  # the shield leaves the rule out
    response = await client.post("/v1/shields", json={"shield_id": "all-patterns", "provider_id": "pattern-guard"})
    assert response.status_code == 200
    violation = (await run_shield(client, "all-patterns", "bluebird +49 30 1234567")).json()["violation"]
    assert violation["violation_level"] == "warn"
    assert violation["metadata"]["violation_type"] == "phone,codenames"


async def test_bad_params_are_400s(client):
    response = await run_shield(client, "pii", "hi", params={"detectors": ["phone"]})
    assert response.status_code == 400
    assert response.json()["detail"] == ("params.detectors: 'phone' is not applied by this shield; "
                                         "it applies: credit_card, email")
    response = await client.post("/v1/shields", json={
        "shield_id": "bad", "provider_id": "pattern-guard", "params": {"rules": ["nope"]}})
    assert response.status_code == 400
    assert response.json()["detail"].startswith("params.rules: unknown rule 'nope'")


async def test_unknown_shield_is_a_404(client):
    response = await run_shield(client, "no-such-shield", "hi")
    assert response.status_code == 404
    assert "'no-such-shield' not found" in response.json()["detail"]
