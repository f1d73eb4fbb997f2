"""Prompt logs (Humanloop compatible) over HTTP, on SQLite and PostgreSQL: v4
logs, sessions and feedback as the documented shapes say; v5 prompts/log and logs."""

from __future__ import annotations

import pytest
import yaml

from tests.support import app_from_yaml, serve_app

CONFIG = {"model": "gpt-4o", "temperature": 0.2}


@pytest.fixture
async def client(tmp_path, store_config, monkeypatch):
    monkeypatch.setenv("POLYSTACK_HOME", str(tmp_path / "home"))
    store = store_config.model_dump(mode="json", exclude_none=True)
    run = {"version": "2", "image_name": "prompt-logs", "apis": ["prompt_logs"],
           "providers": {"prompt_logs": [{"provider_id": "sql", "provider_type": "inline::sql",
                                          "config": {"store": store}}]}}
    async with serve_app(app_from_yaml(tmp_path, yaml.safe_dump(run))) as client:
        yield client


def _detail(response) -> str:
    return str(response.json()["detail"])


async def test_v4_log_creates_the_project_and_returns_ids(client):
    r = await client.post("/v4/logs", json={"project": "qa", "config": CONFIG, "inputs": {"q": "2+2"}, "output": "4"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["id"].startswith("data_") and body["project_id"].startswith("pr_")
    assert body.get("session_id") is None
    again = (await client.post("/v4/logs", json={"project_id": body["project_id"], "config": CONFIG})).json()
    assert again["project_id"] == body["project_id"] and again["id"] != body["id"]


async def test_v4_log_a_list_in_a_session_by_reference(client):
    items = [{"project": "qa", "config": CONFIG, "session_reference_id": "conv-1", "reference_id": f"turn-{n}",
              "output": f"answer {n}", "inputs": {"n": n}} for n in range(3)]
    r = await client.post("/v4/logs", json=items)
    assert r.status_code == 200, r.text
    created = r.json()
    assert len(created) == 3 and len({c["id"] for c in created}) == 3
    assert len({c["session_id"] for c in created}) == 1
    session = (await client.get(f"/v4/sessions/{created[0]['session_id']}")).json()
    assert session["reference_id"] == "conv-1" and session["logs_count"] == 3
    assert session["project"]["name"] == "qa"
    page = (await client.get("/v4/sessions", params={"project_id": created[0]["project_id"]})).json()
    assert page["total"] == 1 and page["records"][0]["id"] == created[0]["session_id"]


async def test_v4_parent_by_reference_must_be_logged_before(client):
    parent = (await client.post("/v4/logs", json={"project": "qa", "config": CONFIG, "reference_id": "p"})).json()
    child = await client.post("/v4/logs", json={"project": "qa", "config": CONFIG, "parent_reference_id": "p"})
    assert child.status_code == 200
    log = (await client.get(f"/v5/logs/{child.json()['id']}")).json()
    assert log["trace_parent_id"] == parent["id"]
    same_request = await client.post("/v4/logs", json=[
        {"project": "qa", "config": CONFIG, "reference_id": "q"},
        {"project": "qa", "config": CONFIG, "parent_reference_id": "q"},
    ])
    assert same_request.status_code == 400
    assert "[1].parent_reference_id" in _detail(same_request) and "same request" in _detail(same_request)
    # nothing of a refused list is written
    assert (await client.patch("/v4/logs", params={"reference_id": "q"}, json={"output": "x"})).status_code == 404


@pytest.mark.parametrize("body, field", [
    ({"session_id": "s", "session_reference_id": "r"}, "session_id"),
    ({"parent_id": "a", "parent_reference_id": "b"}, "parent_id"),
    ({"config": None}, "config"),
    ({"project": None}, "project"),
    ({"config": {"type": "model"}}, "config.model"),
    ({"config": {"type": "mystery", "name": "x"}}, "config.type"),
])
async def test_v4_bad_combinations_are_400_naming_the_field(client, body, field):
    r = await client.post("/v4/logs", json={"project": "qa", "config": CONFIG, **body})
    assert r.status_code == 400, r.text
    assert _detail(r).startswith(f"{field}:")


async def test_v4_unknown_ids_are_404_and_bad_types_422(client):
    r = await client.post("/v4/logs", json={"project_id": "pr_nope", "config": CONFIG})
    assert r.status_code == 404 and "project_id" in _detail(r)
    r = await client.post("/v4/logs", json={"project": "qa", "config": CONFIG, "session_id": "sesh_nope"})
    assert r.status_code == 404 and "session_id" in _detail(r)
    r = await client.post("/v4/logs", json={"project": "qa", "config": CONFIG, "duration": "slow"})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"][-1] == "duration"


async def test_v4_trial_id_uses_the_latest_config(client):
    r = await client.post("/v4/logs", json={"project": "fresh", "trial_id": "tr_1"})
    assert r.status_code == 400 and _detail(r).startswith("trial_id:")
    await client.post("/v4/logs", json={"project": "fresh", "config": CONFIG})
    r = await client.post("/v4/logs", json={"project": "fresh", "trial_id": "tr_1", "output": "x"})
    assert r.status_code == 200, r.text


async def test_v4_reference_id_is_unique_and_updates_by_reference(client):
    first = (await client.post("/v4/logs", json={"project": "qa", "config": CONFIG, "reference_id": "r1"})).json()
    dup = await client.post("/v4/logs", json={"project": "qa", "config": CONFIG, "reference_id": "r1"})
    assert dup.status_code == 409 and "reference_id" in _detail(dup)
    r = await client.patch("/v4/logs", params={"reference_id": "r1"}, json={"output": "late", "duration": 1.25})
    assert r.status_code == 200, r.text
    assert r.json()["id"] == first["id"] and r.json()["output"] == "late" and r.json()["duration"] == 1.25
    r = await client.patch(f"/v4/logs/{first['id']}", json={"error": "boom"})
    assert r.json()["error"] == "boom" and r.json()["output"] == "late"
    assert (await client.patch("/v4/logs/data_nope", json={"output": "x"})).status_code == 404


async def test_v4_feedback_one_or_a_list(client):
    log = (await client.post("/v4/logs", json={
        "project": "qa", "config": CONFIG, "feedback": {"type": "rating", "value": "good"}})).json()
    one = await client.post("/v4/feedback", json={"type": "comment", "value": "fine", "data_id": log["id"]})
    assert one.status_code == 200 and one.json()["data_id"] == log["id"]
    many = await client.post("/v4/feedback", json=[{"type": "action", "value": "copied", "data_id": log["id"]}] * 2)
    assert many.status_code == 200 and len(many.json()) == 2
    stored = (await client.patch(f"/v4/logs/{log['id']}", json={})).json()
    assert sorted(f["type"] for f in stored["feedback"]) == ["action", "action", "comment", "rating"]
    missing = await client.post("/v4/feedback", json={"type": "rating", "value": "bad", "data_id": "data_nope"})
    assert missing.status_code == 404 and "data_id" in _detail(missing)
    assert (await client.post("/v4/feedback", json={"type": "rating"})).status_code == 400


async def test_v5_log_update_list_and_get(client):
    r = await client.post("/v5/prompts/log", json={
        "path": "support/answer", "prompt": {"model": "gpt-4o", "template": "Answer {{q}}"},
        "messages": [{"role": "user", "content": "hi"}], "output": "hello", "inputs": {"q": "hi"},
        "prompt_tokens": 3, "output_tokens": 1,
    })
    assert r.status_code == 200, r.text
    created = r.json()
    assert created["id"].startswith("log_") and created["version_id"].startswith("prv_")
    r = await client.patch(f"/v5/prompts/{created['prompt_id']}/log/{created['id']}",
                           json={"output": "hello there", "output_tokens": 2, "output_cost": 0.001,
                                 "finish_reason": "stop", "log_status": "complete"})
    assert r.status_code == 200, r.text
    assert r.json()["output"] == "hello there" and r.json()["prompt_tokens"] == 3
    # the same settings log to the same version; a version_id query targets it
    second = (await client.post("/v5/prompts/log", params={"version_id": created["version_id"]},
                                json={"output": "again"})).json()
    assert second["version_id"] == created["version_id"] and second["prompt_id"] == created["prompt_id"]
    page = (await client.get("/v5/logs", params={"file_id": created["prompt_id"], "size": 1})).json()
    assert page["total"] == 2 and len(page["records"]) == 1
    log = (await client.get(f"/v5/logs/{created['id']}")).json()
    assert log["prompt"]["path"] == "support/answer" and log["prompt"]["total_logs_count"] == 2
    assert log["finish_reason"] == "stop" and log["output_cost"] == 0.001


async def test_v5_errors_name_the_field(client):
    r = await client.post("/v5/prompts/log", json={"output": "x"})
    assert r.status_code == 400 and _detail(r).startswith("path:")
    r = await client.post("/v5/prompts/log", json={"path": "new/one", "output": "x"})
    assert r.status_code == 400 and _detail(r).startswith("prompt:")
    r = await client.post("/v5/prompts/log", json={"path": "p", "prompt": {"model": "m"}, "prompt_tokens": -1})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"][-1] == "prompt_tokens"
    r = await client.post("/v5/prompts/log", params={"version_id": "prv_nope"}, json={})
    assert r.status_code == 404 and "version_id" in _detail(r)
    ok = (await client.post("/v5/prompts/log", json={"path": "p", "prompt": {"model": "m"}, "log_id": "mine"})).json()
    assert ok["id"] == "mine"
    r = await client.post("/v5/prompts/log", json={"path": "p", "prompt": {"model": "m"}, "log_id": "mine"})
    assert r.status_code == 409 and "log_id" in _detail(r)
    r = await client.patch(f"/v5/prompts/pr_other/log/{ok['id']}", json={"output": "x"})
    assert r.status_code == 404 and "log_id" in _detail(r)
    r = await client.get("/v5/logs", params={"file_id": ok["prompt_id"], "page": 0})
    assert r.status_code == 422 and "page" in _detail(r)


async def test_v5_prompt_file_text_and_v4_logs_in_the_same_file(client):
    text = "---\nmodel: gpt-4o\ntemperature: 0.1\n---\n<user>{{question}}</user>"
    r = await client.post("/v5/prompts/log", json={"path": "shared", "prompt": text, "output": "a"})
    assert r.status_code == 200, r.text
    v4 = (await client.post("/v4/logs", json={"project": "shared", "config": CONFIG, "output": "b"})).json()
    assert v4["project_id"] == r.json()["prompt_id"]
    page = (await client.get("/v5/logs", params={"file_id": v4["project_id"]})).json()
    assert sorted(rec["output"] for rec in page["records"]) == ["a", "b"]
    bad = await client.post("/v5/prompts/log", json={"path": "shared", "prompt": "no front matter"})
    assert bad.status_code == 400 and _detail(bad).startswith("prompt:")


def test_openapi_documents_the_routes():
    from stack.server import openapi_document

    paths = openapi_document()["paths"]
    expected = {("/v4/logs", "post"), ("/v4/logs", "patch"), ("/v4/logs/{id}", "patch"), ("/v4/sessions", "post"),
                ("/v4/sessions", "get"), ("/v4/sessions/{id}", "get"), ("/v4/feedback", "post"),
                ("/v5/prompts/log", "post"), ("/v5/prompts/{id}/log/{log_id}", "patch"), ("/v5/logs", "get"),
                ("/v5/logs/{id}", "get"), ("/v5/prompts/{id}/export", "post")}
    assert {(p, m) for p, ops in paths.items() for m in ops if p.startswith(("/v4/", "/v5/"))} == expected
    params = [p["name"] for p in paths["/v5/prompts/log"]["post"]["parameters"]]
    assert params == ["version_id", "environment"]


def test_the_provider_page_documents_every_config_key():
    import re
    from pathlib import Path

    from providers.inline.prompt_logs.sql import SqlPromptLogsConfig
    from providers.inline.prompt_logs.sql.config import ChatCompletionLogs

    page = (Path(__file__).resolve().parents[2] / "docs" / "providers" / "sql-prompt-logs.md").read_text()
    keys = {*SqlPromptLogsConfig.model_fields, *(f"log_chat_completions.{k}" for k in ChatCompletionLogs.model_fields)}
    assert keys <= set(re.findall(r"^\|\s*`([^`]+)`\s*\|", page, re.MULTILINE))
