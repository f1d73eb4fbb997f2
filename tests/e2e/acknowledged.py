"""Writes of every stateful family sent to a server while it is killed: what got a
200 is remembered as acknowledged, and ``check`` reads each one back (from a
restarted server, or from a surviving replica).

Families: dataset appends, prompt logs, vector inserts, trajectory logs and
agent turns, plus an eval job that is running when the server dies. Inference is
the upstream double (tests/e2e/upstream_double.py), whose ``[slow]`` rows keep
the job busy for seconds.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time

import httpx

from tests.e2e.upstream_double import CHAT_MODEL, DIMENSION, EMBEDDING_MODEL

SCHEMA = {"question": {"type": "string"}, "answer": {"type": "string"}}
TASK_CONFIG = {"type": "benchmark", "eval_candidate": {
    "type": "model", "model": CHAT_MODEL, "sampling_params": {"strategy": {"type": "greedy"}, "max_tokens": 8}}}
AGENT = {"model": CHAT_MODEL, "instructions": "Be brief.", "enable_session_persistence": True,
         "sampling_params": {"strategy": {"type": "greedy"}, "max_tokens": 16}}
FINAL = {"completed", "failed", "cancelled", "interrupted"}
#: rows of an eval job's dataset: 1.5 s each at the double, 8 at a time
EVAL_ROWS = 40


def data_url(rows: list[dict]) -> str:
    text = "".join(json.dumps(r) + "\n" for r in rows)
    return "data:application/jsonl;base64," + base64.b64encode(text.encode()).decode()


def trajectory(reward: float) -> dict:
    return {"messages_and_choices": [
        {"role": "user", "content": "2+2?"},
        {"finish_reason": "stop", "index": 0, "message": {"role": "assistant", "content": "4"}}], "reward": reward}


def ok(response: httpx.Response) -> dict:
    assert response.status_code == 200, f"{response.request.method} {response.request.url}: {response.text}"
    return response.json() if response.content else {}


async def register_dataset(client: httpx.AsyncClient, name: str, rows: list[dict], schema: dict = SCHEMA) -> None:
    ok(await client.post("/v1/datasets", json={"dataset_id": name, "dataset_schema": schema,
                                               "metadata": {"format": "jsonl"}, "url": {"uri": data_url(rows)}}))


async def eval_task(client: httpx.AsyncClient, name: str, rows: int = EVAL_ROWS) -> None:
    """A task over ``rows`` slow questions (about ``rows`` * 1.5 / 8 s a job)."""
    await register_dataset(client, name, [{"input_query": f"[slow] question {i}", "expected_answer": "Hello"}
                                          for i in range(rows)],
                           {"input_query": {"type": "string"}, "expected_answer": {"type": "string"}})
    ok(await client.post("/v1/eval-tasks", json={"eval_task_id": name, "dataset_id": name,
                                                 "scoring_functions": ["basic::subset_of"]}))


async def wait_job(client: httpx.AsyncClient, job_id: str, until: set[str], timeout: float = 30) -> dict:
    """``GET /v1/jobs/{job_id}`` once its status is one of ``until``."""
    deadline = time.monotonic() + timeout
    while (job := ok(await client.get(f"/v1/jobs/{job_id}")))["status"] not in until:
        assert time.monotonic() < deadline, f"job {job_id} still {job['status']}"
        await asyncio.sleep(0.1)
    return job


class AcknowledgedWrites:
    def __init__(self, name: str) -> None:
        self.name = name
        self.acknowledged: dict[str, list[str]] = {"rows": [], "logs": [], "docs": [], "metrics": [], "turns": []}

    async def prepare(self, client: httpx.AsyncClient, other: httpx.AsyncClient | None = None, *, job: bool = True) -> None:
        """Create what the writes go to (the session on ``other`` when given) and, with ``job``,
        start the eval job on ``other`` or ``client`` and wait until it runs."""
        other = other or client
        name = self.name
        ok(await client.post("/v1/vector-dbs", json={"vector_db_id": name, "embedding_model": EMBEDDING_MODEL,
                                                     "embedding_dimension": DIMENSION}))
        await register_dataset(client, name, [{"question": "seed", "answer": "seed"}])
        self.model_id = ok(await client.post("/v1/preview/models", json={
            "project": "p", "name": name, "base_model": CHAT_MODEL}))["id"]
        self.agent_id = ok(await client.post("/v1/agents", json={"agent_config": AGENT}))["agent_id"]
        self.session_id = ok(await other.post(f"/v1/agents/{self.agent_id}/session", json={"session_name": name}))["session_id"]
        if job:
            await eval_task(client, f"{name}-task")
            self.job_id = ok(await other.post(f"/v1/eval/tasks/{name}-task/jobs", json={"task_config": TASK_CONFIG}))["job_id"]
            await wait_job(client, self.job_id, {"in_progress"})

    async def _attempt(self, client: httpx.AsyncClient, kind: str, value, url: str, body: dict) -> httpx.Response | None:
        try:
            response = await client.post(url, json=body)
        except httpx.HTTPError:
            return None  # the connection died with the server: not acknowledged
        if response.status_code == 200:
            self.acknowledged[kind].append(value(response))
        return response

    def requests(self, tag: str) -> list[tuple]:
        """One write of each family marked ``tag``: (family, its id in the answer, route, body)."""
        return [
            ("rows", lambda r: tag, "/v1/datasetio/rows", {"dataset_id": self.name, "rows": [{"question": "q", "answer": tag}]}),
            ("logs", lambda r: r.json()["id"], "/v5/prompts/log",
             {"path": f"kill/{self.name}", "prompt": {"model": CHAT_MODEL}, "output": tag}),
            ("docs", lambda r: tag, "/v1/vector-io/insert", {"vector_db_id": self.name, "chunks": [
                {"content": f"kill test {tag}", "metadata": {"document_id": tag}}]}),
            ("metrics", lambda r: tag, f"/v1/preview/models/{self.model_id}/log",
             {"split": tag, "trajectory_groups": [{"trajectories": [trajectory(1.0)]}]}),
            ("turns", lambda r: r.json()["turn_id"], f"/v1/agents/{self.agent_id}/session/{self.session_id}/turn",
             {"messages": [{"role": "user", "content": tag}], "stream": False}),
        ]

    async def write(self, client: httpx.AsyncClient, i: int) -> None:
        """One write of each family, at once."""
        tag = f"{client.base_url.host}-{client.base_url.port}-{i}"
        await asyncio.gather(*(self._attempt(client, *request) for request in self.requests(tag)))

    async def keep_writing(self, client: httpx.AsyncClient, stop: asyncio.Event, parallel: int = 4) -> None:
        i = 0
        while not stop.is_set():
            await asyncio.gather(*(self.write(client, i + k) for k in range(parallel)))
            i += parallel

    async def check(self, client: httpx.AsyncClient) -> dict[str, int]:
        """Every acknowledged write, read back through ``client``; the counts."""
        acked = self.acknowledged
        assert all(acked.values()), {k: len(v) for k, v in acked.items()}
        rows = ok(await client.get("/v1/datasetio/rows", params={"dataset_id": self.name, "rows_in_page": 1000}))["rows"]
        assert set(acked["rows"]) <= {r["answer"] for r in rows}
        for log_id in acked["logs"]:
            ok(await client.get(f"/v5/logs/{log_id}"))
        hits = ok(await client.post("/v1/vector-io/query", json={"vector_db_id": self.name, "query": "kill test",
                                                                 "params": {"max_chunks": 1000}}))
        assert set(acked["docs"]) <= {c["metadata"]["document_id"] for c in hits["chunks"]}
        splits = {h["split"] for h in ok(await client.get(f"/v1/preview/models/{self.model_id}/metrics"))["data"]}
        assert set(acked["metrics"]) <= splits
        session = ok(await client.get(f"/v1/agents/{self.agent_id}/session/{self.session_id}"))
        assert set(acked["turns"]) <= {t["turn_id"] for t in session["turns"]}
        return {k: len(v) for k, v in acked.items()}

    async def restart_interrupted_job(self, client: httpx.AsyncClient, dead_pid: int) -> dict:
        """The job that ran in the killed process: interrupted; restarted through ``client``, to completion."""
        interrupted = await wait_job(client, self.job_id, FINAL, timeout=30)
        assert interrupted["status"] == "interrupted" and f"pid {dead_pid}" in interrupted["error"]
        again = ok(await client.post(f"/v1/jobs/{self.job_id}/restart"))
        assert again["params"]["restart_of"] == self.job_id and again["params"]["task_id"] == f"{self.name}-task"
        done = await wait_job(client, again["job_id"], FINAL, timeout=60)
        assert done["status"] == "completed", done
        result = ok(await client.get(f"/v1/eval/tasks/{self.name}-task/jobs/{again['job_id']}/result"))
        assert len(result["generations"]) == EVAL_ROWS
        assert (await client.post(f"/v1/jobs/{again['job_id']}/restart")).status_code == 409  # completed: nothing to redo
        return done

    async def assert_absent(self, client: httpx.AsyncClient, tag: str) -> None:
        """None of the writes marked ``tag`` (refused ones) left anything behind."""
        rows = ok(await client.get("/v1/datasetio/rows", params={"dataset_id": self.name, "rows_in_page": 1000}))["rows"]
        assert tag not in {r["answer"] for r in rows}
        prompt_id = ok(await client.get(f"/v5/logs/{self.acknowledged['logs'][0]}"))["prompt"]["id"]
        logs = ok(await client.get("/v5/logs", params={"file_id": prompt_id, "size": 100}))["records"]
        assert tag not in {log["output"] for log in logs}
        hits = ok(await client.post("/v1/vector-io/query", json={"vector_db_id": self.name, "query": "kill test",
                                                                 "params": {"max_chunks": 1000}}))
        assert tag not in {c["metadata"]["document_id"] for c in hits["chunks"]}
        splits = {h["split"] for h in ok(await client.get(f"/v1/preview/models/{self.model_id}/metrics"))["data"]}
        assert tag not in splits
        session = ok(await client.get(f"/v1/agents/{self.agent_id}/session/{self.session_id}"))
        assert tag not in {m["content"] for t in session["turns"] for m in t["input_messages"]}
