"""remote::bedrock safety: shields are Bedrock Guardrails, run through ApplyGuardrail against FakeBedrock."""

from __future__ import annotations

import json

import pytest

from tests.providers.remote.bedrock_double import FakeBedrock, aws_env, error
from tests.support import app_from_yaml, serve_app

RUN_YAML = """\
version: '2'
image_name: bedrock-guardrails-test
apis: [safety]
providers:
  safety:
  - provider_id: bedrock
    provider_type: remote::bedrock
    config: {}
shields:
- shield_id: no-weapons
  provider_shield_id: gr1abc2def3
  params: {guardrailVersion: "2"}
"""


@pytest.fixture
async def guarded(monkeypatch, tmp_path):
    server = await FakeBedrock().start()
    for key, value in {**aws_env(server.url), "POLYSTACK_HOME": str(tmp_path)}.items():
        monkeypatch.setenv(key, value)
    async with serve_app(app_from_yaml(tmp_path, RUN_YAML)) as client:
        yield client, server
    await server.stop()


def run(shield_id: str, *messages: tuple[str, str], params: dict | None = None) -> dict:
    return {"shield_id": shield_id, "params": params or {},
            "messages": [{"role": role, "content": text, **({"stop_reason": "end_of_turn"} if role == "assistant" else {})}
                         for role, text in messages]}


async def test_a_blocked_message_is_a_violation_with_the_guardrails_words(guarded):
    client, bedrock = guarded
    response = await client.post("/v1/safety/run-shield", json=run("no-weapons", ("user", "How do I build a bomb?")))
    assert response.status_code == 200, response.text
    violation = response.json()["violation"]
    assert violation["violation_level"] == "error"
    assert violation["user_message"] == "Sorry, I can't help with that."
    assert violation["metadata"]["violation_type"] == "topicPolicy,contentPolicy"
    assert violation["metadata"]["guardrail_version"] == "2"
    [sent] = bedrock.of("ApplyGuardrail")
    assert sent.target == "gr1abc2def3@2"
    assert sent.body == {"source": "INPUT", "content": [{"text": {"text": "How do I build a bomb?"}}]}


async def test_a_clean_answer_passes_and_is_checked_as_output(guarded):
    client, bedrock = guarded
    response = await client.post("/v1/safety/run-shield", json=run(
        "no-weapons", ("user", "Hi"), ("assistant", "Hello! How can I help?")))
    assert response.json() == {"violation": None}
    assert bedrock.of("ApplyGuardrail")[0].body["source"] == "OUTPUT"


async def test_request_params_may_pick_the_version_and_source_but_nothing_else(guarded):
    client, bedrock = guarded
    ok = await client.post("/v1/safety/run-shield", json=run(
        "no-weapons", ("user", "Hi"), params={"guardrailVersion": "DRAFT", "source": "OUTPUT"}))
    bad = await client.post("/v1/safety/run-shield", json=run("no-weapons", ("user", "Hi"), params={"threshold": 1}))
    assert ok.status_code == 200 and bedrock.of("ApplyGuardrail")[0].target == "gr1abc2def3@DRAFT"
    assert bad.status_code == 400 and bad.json()["detail"].startswith("params:")


async def test_registering_a_shield_needs_a_guardrail_version(guarded):
    client, _ = guarded
    missing = await client.post("/v1/shields", json={"shield_id": "gr2", "provider_id": "bedrock"})
    ok = await client.post("/v1/shields", json={"shield_id": "gr2", "provider_id": "bedrock",
                                                "params": {"guardrailVersion": "DRAFT"}})
    assert missing.status_code == 400
    assert missing.json()["detail"].startswith("params.guardrailVersion")
    assert ok.status_code == 200, ok.text


@pytest.mark.parametrize("code, status, expected", [
    ("ValidationException", 400, 400), ("ThrottlingException", 429, 502), ("ResourceNotFoundException", 404, 404)])
async def test_guardrail_errors_follow_the_error_contract(guarded, code, status, expected):
    client, bedrock = guarded
    bedrock.then(error(code, status, "The guardrail says no"))
    response = await client.post("/v1/safety/run-shield", json=run("no-weapons", ("user", "Hi")))
    assert response.status_code == expected, response.text
    assert "The guardrail says no" in response.json()["detail"]


async def test_per_request_keys_sign_the_guardrail_call(guarded):
    client, bedrock = guarded
    await client.post("/v1/safety/run-shield", json=run("no-weapons", ("user", "Hi")), headers={
        "X-LlamaStack-Provider-Data": json.dumps({"aws_access_key_id": "AKIDCALLER", "aws_secret_access_key": "x"})})
    assert bedrock.of("ApplyGuardrail")[0].access_key_id == "AKIDCALLER"
