"""Prompt logs: the paged listings across projects the console reads, on SQLite and PostgreSQL."""

from __future__ import annotations

from tests.apis.test_prompt_logs import CONFIG, client  # noqa: F401


async def test_logs_newest_first_filtered_by_project_and_session(client):
    made = []
    for n in range(5):
        body = {"project": "qa" if n % 2 == 0 else "chat", "config": CONFIG, "output": f"answer {n}",
                "messages": [{"role": "user", "content": f"question {n}"}],
                **({"session_reference_id": "conv-1"} if n >= 3 else {})}
        made.append((await client.post("/v4/logs", json=body)).json())
    first = (await client.get("/v1/prompt-logs", params={"limit": 3})).json()
    second = (await client.get("/v1/prompt-logs", params={"limit": 3, "offset": 3})).json()
    qa = (await client.get("/v1/prompt-logs", params={"project_id": made[0]["project_id"]})).json()
    session = (await client.get("/v1/prompt-logs", params={"session_id": made[3]["session_id"]})).json()
    projects = (await client.get("/v1/prompt-log-projects")).json()
    assert [r["output"] for r in first["data"]] == ["answer 4", "answer 3", "answer 2"] and first["has_more"]
    assert [r["output"] for r in second["data"]] == ["answer 1", "answer 0"] and not second["has_more"]
    assert first["data"][0]["project"] == "qa" and first["data"][0]["messages_count"] == 1
    assert [r["output"] for r in qa["data"]] == ["answer 4", "answer 2", "answer 0"]
    assert [r["output"] for r in session["data"]] == ["answer 4", "answer 3"]
    assert sorted(p["path"] for p in projects["data"]) == ["chat", "qa"]


async def test_one_log_with_its_messages_and_feedback(client):
    log = (await client.post("/v4/logs", json={"project": "qa", "config": CONFIG, "output": "4",
                                                "messages": [{"role": "user", "content": "2+2?"}]})).json()
    await client.post("/v4/feedback", json={"type": "rating", "value": "good", "data_id": log["id"]})
    got = (await client.get(f"/v1/prompt-logs/{log['id']}")).json()
    missing = await client.get("/v1/prompt-logs/data_nope")
    too_big = await client.get("/v1/prompt-logs", params={"limit": 101})
    far = await client.get("/v1/prompt-logs", params={"offset": 2**70})
    assert [(m["role"], m["content"]) for m in got["messages"]] == [("user", "2+2?")] and got["output"] == "4"
    assert [(f["type"], f["value"]) for f in got["feedback"]] == [("rating", "good")]
    assert got["project"] == "qa" and got["config"]["model"] == "gpt-4o"
    assert missing.status_code == 404 and "data_nope" in missing.json()["detail"]
    assert too_big.status_code == 422 and far.status_code == 422
