"""Scale-out: two ``polystack run`` replicas of the ``postgres`` distribution on one
PostgreSQL (pgserver), driven at once. Inference is an upstream test double
(tests/e2e/upstream_double.py): what is under test is the shared state.

What one replica creates the other uses; concurrent writes split across both
are all there; a job started on one is seen and cancelled on the other; a
replica killed with SIGKILL loses no write it acknowledged, and its running job
is marked interrupted by the survivor, which can run it again.
"""

from __future__ import annotations

import asyncio
import signal
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import psycopg
import pytest
import yaml
from psycopg.conninfo import conninfo_to_dict

from tests.e2e.acknowledged import (
    TASK_CONFIG,
    AcknowledgedWrites,
    AGENT,
    eval_task,
    ok,
    register_dataset,
    trajectory,
    wait_job,
)
from tests.e2e.upstream_double import CHAT_MODEL, DIMENSION, EMBEDDING_MODEL, on_double, upstream_double
from tests.support import ServerProcess


@pytest.fixture(scope="module")
def replicas(pg_server, tmp_path_factory):
    """Replicas a and b of the postgres distribution on a database of their own."""
    db = f"replicas_{time.monotonic_ns()}"
    with psycopg.connect(pg_server.get_uri(), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{db}"')
    params = conninfo_to_dict(pg_server.get_uri())
    env = {"POSTGRES_HOST": params["host"], "POSTGRES_PORT": "5432", "POSTGRES_DB": db, "POSTGRES_USER": params["user"]}
    root = tmp_path_factory.mktemp("replicas")
    with upstream_double() as url:
        run_yaml = root / "run.yaml"
        run_yaml.write_text(yaml.safe_dump(on_double("postgres", url)))
        servers = [ServerProcess(str(run_yaml), home=root / name, env=env) for name in ("a", "b")]
        with ThreadPoolExecutor(2) as pool:  # start both at once: the start-up is the slow part
            list(pool.map(lambda s: s.start(timeout=120), servers))
        try:
            yield servers
        finally:
            for server in servers:
                server.stop()
    local = [p for name in ("a", "b") for p in (root / name).rglob("*.db")]
    assert not local, f"a replica wrote a local database: {local}"


def clients(replicas) -> list[httpx.AsyncClient]:
    return [httpx.AsyncClient(base_url=s.base_url, timeout=60) for s in replicas]


async def test_what_one_replica_creates_the_other_serves(replicas):
    a, b = clients(replicas)
    async with a, b:
        # a model alias registered on a answers chat on b
        ok(await a.post("/v1/models", json={"model_id": "alias", "provider_model_id": CHAT_MODEL,
                                            "provider_id": "upstream", "model_type": "llm"}))
        chat = ok(await b.post("/v1/chat/completions", json={"model": "alias", "messages": [{"role": "user", "content": "hi"}]}))
        assert chat["choices"][0]["message"]["content"] == "Hello from the upstream double"

        # a vector DB registered on a, filled on b, queried on a
        ok(await a.post("/v1/vector-dbs", json={"vector_db_id": "kb", "embedding_model": EMBEDDING_MODEL,
                                                "embedding_dimension": DIMENSION}))
        ok(await b.post("/v1/vector-io/insert", json={"vector_db_id": "kb", "chunks": [
            {"content": "sourdough bread rises with wild yeast", "metadata": {"document_id": "bread"}},
            {"content": "neural networks learn weights from data", "metadata": {"document_id": "nn"}}]}))
        hits = ok(await a.post("/v1/vector-io/query", json={"vector_db_id": "kb", "query": "wild yeast bread"}))
        assert hits["chunks"][0]["metadata"]["document_id"] == "bread"

        # a dataset registered on b, appended to on a, read on b
        await register_dataset(b, "qa", [{"question": "2+2?", "answer": "4"}])
        ok(await a.post("/v1/datasetio/rows", json={"dataset_id": "qa", "rows": [{"question": "3+3?", "answer": "6"}]}))
        rows = ok(await b.get("/v1/datasetio/rows", params={"dataset_id": "qa", "rows_in_page": 10}))
        assert [r["answer"] for r in rows["rows"]] == ["4", "6"]

        # an agent made on a, its session on b, a turn on a, read back on b
        agent_id = ok(await a.post("/v1/agents", json={"agent_config": AGENT}))["agent_id"]
        session_id = ok(await b.post(f"/v1/agents/{agent_id}/session", json={"session_name": "s"}))["session_id"]
        turn = ok(await a.post(f"/v1/agents/{agent_id}/session/{session_id}/turn",
                               json={"messages": [{"role": "user", "content": "Hello?"}], "stream": False}))
        session = ok(await b.get(f"/v1/agents/{agent_id}/session/{session_id}"))
        assert [t["turn_id"] for t in session["turns"]] == [turn["turn_id"]]
        assert session["turns"][0]["output_message"]["content"] == "Hello from the upstream double"

        # a trajectory model created on b, logged on a, its metrics read on b
        model = ok(await b.post("/v1/preview/models", json={"project": "p", "name": "run", "base_model": CHAT_MODEL}))
        ok(await a.post(f"/v1/preview/models/{model['id']}/log",
                        json={"split": "train", "trajectory_groups": [{"trajectories": [trajectory(1.0), trajectory(0.0)]}]}))
        history = ok(await b.get(f"/v1/preview/models/{model['id']}/metrics"))["data"]
        assert [h["metrics"]["train/reward"] for h in history] == [0.5]

        # a prompt log written on a, read on b
        logged = ok(await a.post("/v5/prompts/log", json={"path": "replicas/hello", "prompt": {"model": CHAT_MODEL},
                                                          "output": "hi there"}))
        assert ok(await b.get(f"/v5/logs/{logged['id']}"))["output"] == "hi there"

        # a's request spans reach the store b reads (flushed within a second or so)
        traced = await a.get("/v1/models")
        trace_id = traced.headers["X-Trace-Id"]
        deadline = time.monotonic() + 15
        while (trace := await b.get(f"/v1/telemetry/traces/{trace_id}")).status_code == 404:
            assert time.monotonic() < deadline, "a's trace never reached b"
            await asyncio.sleep(0.2)
        assert ok(trace)["trace_id"] == trace_id


async def test_concurrent_writes_split_across_replicas_lose_nothing(replicas):
    n = 24
    a, b = clients(replicas)
    async with a, b:
        both = [a, b]
        ok(await a.post("/v1/vector-dbs", json={"vector_db_id": "many", "embedding_model": EMBEDDING_MODEL,
                                                "embedding_dimension": DIMENSION}))
        await register_dataset(a, "appended", [{"question": "seed", "answer": "0"}])
        model = ok(await b.post("/v1/preview/models", json={"project": "p", "name": "many", "base_model": CHAT_MODEL}))
        agent_id = ok(await b.post("/v1/agents", json={"agent_config": AGENT}))["agent_id"]
        sessions = [ok(await both[i % 2].post(f"/v1/agents/{agent_id}/session", json={"session_name": f"s{i}"}))["session_id"]
                    for i in range(4)]

        async def write(i: int) -> None:
            client = both[i % 2]
            await asyncio.gather(
                client.post("/v1/vector-io/insert", json={"vector_db_id": "many", "chunks": [
                    {"content": f"chunk number {i}", "metadata": {"document_id": f"doc-{i}"}}]}),
                client.post("/v1/datasetio/rows", json={"dataset_id": "appended", "rows": [{"question": f"q{i}", "answer": str(i)}]}),
                client.post(f"/v1/preview/models/{model['id']}/log", json={"split": "train", "trajectory_groups": [
                    {"trajectories": [trajectory(1.0)], "metrics": {"i": i}}]}),
                client.post("/v5/prompts/log", json={"path": "replicas/many", "prompt": {"model": CHAT_MODEL}, "output": f"out-{i}"}),
            )

        async def turns(i: int) -> str:
            session = sessions[i % len(sessions)]
            return ok(await both[i % 2].post(f"/v1/agents/{agent_id}/session/{session}/turn",
                                             json={"messages": [{"role": "user", "content": f"turn {i}"}], "stream": False}))["turn_id"]

        results = await asyncio.gather(*(write(i) for i in range(n)), *(turns(i) for i in range(len(sessions))))
        turn_ids = results[n:]

        hits = ok(await b.post("/v1/vector-io/query", json={"vector_db_id": "many", "query": "chunk number",
                                                            "params": {"max_chunks": 100}}))
        assert sorted(c["metadata"]["document_id"] for c in hits["chunks"]) == sorted(f"doc-{i}" for i in range(n))
        rows = ok(await a.get("/v1/datasetio/rows", params={"dataset_id": "appended", "rows_in_page": 100}))["rows"]
        assert sorted(r["answer"] for r in rows) == sorted(["0", *map(str, range(n))])
        history = ok(await b.get(f"/v1/preview/models/{model['id']}/metrics"))["data"]
        assert sorted(h["metrics"]["train/group_metric_i"] for h in history) == list(range(n))
        first = ok(await a.post("/v5/prompts/log", json={"path": "replicas/many", "prompt": {"model": CHAT_MODEL}, "output": "last"}))
        page = ok(await b.get("/v5/logs", params={"file_id": first["prompt_id"], "size": 100}))
        assert sorted(r["output"] for r in page["records"]) == sorted([*(f"out-{i}" for i in range(n)), "last"])
        for i, turn_id in enumerate(turn_ids):
            ok(await both[(i + 1) % 2].get(f"/v1/agents/{agent_id}/session/{sessions[i]}/turn/{turn_id}"))


async def test_a_job_started_on_one_replica_is_seen_and_cancelled_on_the_other(replicas):
    a, b = clients(replicas)
    async with a, b:
        await eval_task(a, "slow-task")
        job_id = ok(await a.post("/v1/eval/tasks/slow-task/jobs", json={"task_config": TASK_CONFIG}))["job_id"]
        seen = await wait_job(b, job_id, {"in_progress"})
        assert seen["kind"] == "eval" and seen["owner_id"].split(":")[1] == str(replicas[0].proc.pid)
        assert ok(await b.delete(f"/v1/jobs/{job_id}"))["status"] in ("in_progress", "cancelled")
        cancelled = await wait_job(a, job_id, {"cancelled", "completed", "failed"}, timeout=10)
        assert cancelled["status"] == "cancelled"
        assert ok(await b.get(f"/v1/eval/tasks/slow-task/jobs/{job_id}")) == "failed"  # the spec's word for it


async def test_a_killed_replica_loses_no_acknowledged_write(replicas):
    victim, survivor = replicas
    a, b = clients(replicas)
    writes = AcknowledgedWrites("killed")
    async with a, b:
        await writes.prepare(b, other=a)  # the session and the running eval job on the victim
        stop = asyncio.Event()
        writers = [asyncio.create_task(writes.keep_writing(c, stop)) for c in (a, b)]
        await asyncio.sleep(2.0)
        victim.proc.send_signal(signal.SIGKILL)  # mid-write: requests to it are in flight
        victim.proc.wait()
        await asyncio.sleep(0.5)
        stop.set()
        await asyncio.gather(*writers)

        counts = await writes.check(b)
        # the dead replica's eval job: the survivor marks it interrupted, then runs it again
        done = await writes.restart_interrupted_job(b, victim.proc.pid)
        assert done["owner_id"].split(":")[1] == str(survivor.proc.pid)
    print(f"\nacknowledged, then read back from the survivor: {counts}")
