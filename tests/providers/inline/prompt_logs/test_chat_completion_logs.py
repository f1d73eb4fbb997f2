"""``log_chat_completions``: chat completions served by the real SmolLM2 (inline::llama-cpp)
become prompt logs with tokens, latency and cost, streamed or not."""

from __future__ import annotations

import json

import pytest
import yaml

from providers.inline.inference.llama_cpp.config import DEFAULT_MODEL_ID
from tests.support import app_from_yaml, serve_app

HELLO = [{"role": "user", "content": "Say hello."}]


def _run_config(home, log_chat_completions):
    prompt_logs = {"store": {"type": "sqlite", "db_path": str(home / "logs.db")}}
    if log_chat_completions is not None:
        prompt_logs["log_chat_completions"] = log_chat_completions
    return yaml.safe_dump({
        "version": "2", "image_name": "chat-logs", "apis": ["inference", "prompt_logs"],
        "providers": {
            "inference": [{"provider_id": "llama", "provider_type": "inline::llama-cpp", "config": {"n_threads": 1}}],
            "prompt_logs": [{"provider_id": "sql", "provider_type": "inline::sql", "config": prompt_logs}],
        },
        "models": [{"model_id": "smol", "provider_id": "llama", "provider_model_id": DEFAULT_MODEL_ID}],
    })


async def _logs(client, path):
    first = await client.post("/v5/prompts/log", json={"path": path, "prompt": {"model": "probe"}, "output": "probe"})
    page = (await client.get("/v5/logs", params={"file_id": first.json()["prompt_id"], "size": 100})).json()
    return [r for r in page["records"] if r["output"] != "probe"]


async def test_completions_are_logged_with_tokens_latency_and_cost(tmp_path, monkeypatch):
    monkeypatch.setenv("POLYSTACK_HOME", str(tmp_path))
    prices = {"smol": {"input": 1.0, "output": 2.0}}
    app = app_from_yaml(tmp_path, _run_config(tmp_path, {"path_prefix": "served/", "prices": prices}))
    async with serve_app(app) as client:
        body = {"model": "smol", "messages": HELLO, "max_tokens": 4, "ignore_eos": True, "temperature": 0}
        answer = (await client.post("/v1/chat/completions", json=body)).json()
        streamed = await client.post("/v1/chat/completions", json={**body, "stream": True})
        events = [json.loads(line[6:]) for line in streamed.text.splitlines()
                  if line.startswith("data: {")]
        streamed_text = "".join(c["delta"].get("content") or "" for e in events for c in e["choices"])
        logs = await _logs(client, "served/smol")
    assert len(logs) == 2
    by_output = {log["output"]: log for log in logs}
    plain = by_output[answer["choices"][0]["message"]["content"]]
    assert plain["prompt_tokens"] == answer["usage"]["prompt_tokens"] and plain["output_tokens"] == 4
    assert plain["prompt_cost"] == pytest.approx(answer["usage"]["prompt_tokens"] / 1e6)
    assert plain["output_cost"] == pytest.approx(4 * 2.0 / 1e6)
    assert plain["provider_latency"] > 0 and plain["finish_reason"] == "length"
    assert [(m["role"], m["content"]) for m in plain["messages"]] == [("user", "Say hello.")]
    assert plain["prompt"]["model"] == "smol" and plain["prompt"]["max_tokens"] == 4
    stream_log = by_output[streamed_text]
    assert stream_log["output_tokens"] == 4 and stream_log["prompt"]["version_id"] == plain["prompt"]["version_id"]


async def test_off_by_default(tmp_path, monkeypatch):
    monkeypatch.setenv("POLYSTACK_HOME", str(tmp_path))
    async with serve_app(app_from_yaml(tmp_path, _run_config(tmp_path, None))) as client:
        r = await client.post("/v1/chat/completions", json={"model": "smol", "messages": HELLO, "max_tokens": 2})
        assert r.status_code == 200
        assert await _logs(client, "chat-completions/smol") == []


async def test_needs_the_inference_api(tmp_path, monkeypatch):
    monkeypatch.setenv("POLYSTACK_HOME", str(tmp_path))
    config = yaml.safe_load(_run_config(tmp_path, {}))
    config["apis"] = ["prompt_logs"]
    del config["providers"]["inference"], config["models"]
    with pytest.raises(Exception, match="log_chat_completions needs the inference API"):
        async with serve_app(app_from_yaml(tmp_path, yaml.safe_dump(config))):
            pass
