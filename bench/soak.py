"""Soak: a mixed workload against one `polystack run` for a bounded time.

usage: python bench/soak.py [--duration 60] [--concurrency 16] [--seed 0] [--outage SECONDS]

Starts bench/_instant_upstream.py (an OpenAI-compatible upstream that answers
chat and embeddings at once) and a `polystack run` with inference
(remote::openai -> the upstream, one chat and one embedding model), agents
(inline::meta-reference), safety (pattern-guard), vector IO (inline::faiss),
prompt logs and trajectories (inline::sql), all on SQLite in a scratch home.
Sets up a vector DB of 200 chunks, an agent and a trajectory model, then runs
--concurrency workers for --duration seconds, each picking its next request
at random from these kinds:

  chat          POST /v1/chat/completions
  chat-stream   POST /v1/chat/completions, stream: true (read to [DONE])
  llama-chat    POST /v1/inference/chat-completion
  embeddings    POST /v1/embeddings (4 texts)
  vector-query  POST /v1/vector-io/query (embeds the query, searches faiss)
  vector-insert POST /v1/vector-io/insert (2 chunks)
  agent-turn    POST .../turn, non-streamed (a new session every 10 turns)
  prompt-log    POST /v5/prompts/log
  trajectory    POST /v1/preview/models/{id}/log (a group of 2 trajectories)

Prints per kind: count, p50 / p99 latency and errors (a non-2xx answer, an
error event in a stream, or an exception), and the server's RSS before and
after. With --outage, the upstream is killed (SIGKILL) a third of the way in and
started again on the same port SECONDS later: errors are then counted apart
for requests that began before, during and after the outage, with their
status codes (those that overlap it should be 502s and 504s, or error events ending the
streams it cut; none after it). The upstream does no work, so latencies are the stack's own cost plus
the shared machine's load.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import httpx
import psutil

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))
from proxy import free_port, wait_until_up

from tests.support import ServerProcess

RUN_YAML = """\
version: '2'
image_name: soak
apis: [inference, safety, agents, vector_io, prompt_logs, trajectories]
providers:
  inference:
  - provider_id: upstream
    provider_type: remote::openai
    config:
      url: {url}
      api_key: soak
  safety:
  - provider_id: pattern-guard
    provider_type: inline::pattern-guard
    config: {{}}
  agents:
  - provider_id: meta-reference
    provider_type: inline::meta-reference
    config: {{}}
  vector_io:
  - provider_id: faiss
    provider_type: inline::faiss
    config: {{}}
  prompt_logs:
  - provider_id: prompt-logs
    provider_type: inline::sql
    config: {{}}
  trajectories:
  - provider_id: trajectories
    provider_type: inline::sql
    config: {{}}
models:
- model_id: chat
  provider_id: upstream
  provider_model_id: bench-upstream
  model_type: llm
- model_id: embed
  provider_id: upstream
  provider_model_id: bench-embedder
  model_type: embedding
  metadata: {{embedding_dimension: 16}}
shields:
- shield_id: pattern-guard
  provider_id: pattern-guard
"""
MESSAGES = [{"role": "user", "content": "Say something about foxes."}]
KINDS = ("chat", "chat-stream", "llama-chat", "embeddings", "vector-query", "vector-insert", "agent-turn",
         "prompt-log", "trajectory")


class Soak:
    def __init__(self, client: httpx.AsyncClient, rng: random.Random) -> None:
        self.client = client
        self.rng = rng
        self.latency: dict[str, list[float]] = defaultdict(list)
        self.errors: dict[str, int] = defaultdict(int)
        self.first_error: dict[str, str] = {}
        self.agent_id = ""
        self.model_id = ""
        self.outage: tuple[float, float] | None = None  # (down, up) perf_counter times, once over
        self.down_since: float | None = None
        self.phase_errors: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))

    async def setup(self) -> None:
        c = self.client
        (await c.post("/v1/vector-dbs", json={"vector_db_id": "docs", "embedding_model": "embed",
                                              "embedding_dimension": 16})).raise_for_status()
        for start in range(0, 200, 50):
            chunks = [{"content": f"document {i} is about foxes number {i}", "metadata": {"document_id": f"d{i}"}}
                      for i in range(start, start + 50)]
            (await c.post("/v1/vector-io/insert", json={"vector_db_id": "docs", "chunks": chunks})).raise_for_status()
        agent = await c.post("/v1/agents", json={"agent_config": {
            "model": "chat", "instructions": "You are terse.", "enable_session_persistence": True,
            "sampling_params": {"max_tokens": 32}}})
        agent.raise_for_status()
        self.agent_id = agent.json()["agent_id"]
        model = await c.post("/v1/preview/models", json={"entity": "soak", "project": "p", "name": "m",
                                                         "base_model": "chat", "return_existing": True})
        model.raise_for_status()
        self.model_id = model.json()["id"]

    async def worker(self, deadline: float) -> None:
        session, turns = "", 0
        while time.perf_counter() < deadline:
            kind = self.rng.choice(KINDS)
            if kind == "agent-turn" and (not session or turns >= 10):
                created = await self.client.post(f"/v1/agents/{self.agent_id}/session", json={"session_name": "soak"})
                if created.status_code != 200:
                    self._error(kind, f"session: {created.status_code} {created.text[:200]}")
                    continue
                session, turns = created.json()["session_id"], 0
            started = time.perf_counter()
            try:
                problem = await self.request(kind, session)
            except Exception as exc:  # noqa: BLE001 - counted per kind
                problem = f"{type(exc).__name__}: {exc}"
            if kind == "agent-turn":
                turns += 1
            if problem:
                self._error(kind, problem)
                self.phase_errors[self._phase(started, time.perf_counter())][problem[:3]] += 1
            else:
                self.latency[kind].append((time.perf_counter() - started) * 1000)

    def _phase(self, started: float, ended: float) -> str:
        """When a request ran: before the outage, overlapping it (in flight at the kill included), after it."""
        down = self.outage[0] if self.outage is not None else self.down_since
        if down is None or ended < down:
            return "before"
        return "after" if self.outage is not None and started >= self.outage[1] else "during"

    def _error(self, kind: str, problem: str) -> None:
        self.errors[kind] += 1
        self.first_error.setdefault(kind, problem)

    async def request(self, kind: str, session: str) -> str | None:
        """Send one request of ``kind``; what went wrong, or None."""
        c, n = self.client, self.rng.randrange(1_000_000)
        if kind == "chat-stream":
            async with c.stream("POST", "/v1/chat/completions",
                                json={"model": "chat", "messages": MESSAGES, "stream": True}) as response:
                if response.status_code != 200:
                    return f"{response.status_code} {(await response.aread())[:200]!r}"
                body = b"".join([part async for part in response.aiter_bytes()])
            return None if body.rstrip().endswith(b"data: [DONE]") else f"stream: {body[-200:]!r}"
        if kind == "chat":
            response = await c.post("/v1/chat/completions", json={"model": "chat", "messages": MESSAGES})
        elif kind == "llama-chat":
            response = await c.post("/v1/inference/chat-completion", json={"model_id": "chat", "messages": MESSAGES})
        elif kind == "embeddings":
            response = await c.post("/v1/embeddings", json={"model": "embed", "input": [f"text {n + i}" for i in range(4)]})
        elif kind == "vector-query":
            response = await c.post("/v1/vector-io/query", json={"vector_db_id": "docs", "query": f"foxes {n}",
                                                                 "params": {"max_chunks": 5}})
        elif kind == "vector-insert":
            chunks = [{"content": f"soak note {n}-{i}", "metadata": {"document_id": f"s{n}-{i}"}} for i in range(2)]
            response = await c.post("/v1/vector-io/insert", json={"vector_db_id": "docs", "chunks": chunks})
        elif kind == "agent-turn":
            response = await c.post(f"/v1/agents/{self.agent_id}/session/{session}/turn",
                                    json={"messages": MESSAGES, "stream": False})
        elif kind == "prompt-log":
            response = await c.post("/v5/prompts/log", json={
                "path": "soak/foxes", "prompt": {"model": "chat", "template": [{"role": "user", "content": "{{q}}"}]},
                "inputs": {"q": f"foxes {n}"}, "output": "The quick brown fox", "prompt_tokens": 5,
                "output_tokens": 5})
        else:
            choice = {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "4"}}
            trajectories = [{"messages_and_choices": [{"role": "user", "content": "2+2?"}, choice],
                             "reward": float(i), "metrics": {"correct": bool(i)}} for i in range(2)]
            response = await c.post(f"/v1/preview/models/{self.model_id}/log", json={
                "split": "train", "trajectory_groups": [{"trajectories": trajectories}]})
        if response.status_code >= 300:
            return f"{response.status_code} {response.text[:200]}"
        # an answer must carry what was asked for, not only a 200
        if kind == "vector-query" and not response.json()["chunks"]:
            return "no chunks found"
        if kind == "agent-turn" and not response.json()["output_message"]["content"]:
            return "a turn without an answer"
        return None


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * q))]


async def outage(run: Soak, upstream: Upstream, at: float, seconds: float) -> None:
    """Kill the upstream at ``at`` (perf_counter time) and start it again ``seconds`` later."""
    await asyncio.sleep(max(0.0, at - time.perf_counter()))
    run.down_since = time.perf_counter()
    upstream.kill()
    await asyncio.sleep(seconds)
    await asyncio.to_thread(upstream.start)
    run.outage = (run.down_since, time.perf_counter())


class Upstream:
    """bench/_instant_upstream.py in its own process, on one port for its whole life."""

    def __init__(self) -> None:
        self.port = free_port()
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen([sys.executable, str(HERE / "_instant_upstream.py"), str(self.port)])
        wait_until_up(f"http://127.0.0.1:{self.port}/", self.proc)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


async def soak(base_url: str, process: psutil.Process, args: argparse.Namespace, upstream: Upstream) -> int:
    limits = httpx.Limits(max_connections=args.concurrency, max_keepalive_connections=args.concurrency)
    async with httpx.AsyncClient(base_url=base_url, timeout=60, limits=limits) as client:
        run = Soak(client, random.Random(args.seed))
        await run.setup()
        rss_before = process.memory_info().rss
        began = time.perf_counter()
        deadline = began + args.duration
        faults = [outage(run, upstream, began + args.duration / 3, args.outage)] if args.outage else []
        await asyncio.gather(*(run.worker(deadline) for _ in range(args.concurrency)), *faults)
        elapsed = time.perf_counter() - began
        rss_after = process.memory_info().rss
    total = sum(len(v) for v in run.latency.values()) + sum(run.errors.values())
    print(f"{args.duration:.0f} s, {args.concurrency} workers: {total} requests ({total / elapsed:.0f}/s), "
          f"{sum(run.errors.values())} errors; server RSS {rss_before / 2**20:.0f} -> {rss_after / 2**20:.0f} MiB\n")
    print("| kind | requests | p50 ms | p99 ms | errors |")
    print("|---|---|---|---|---|")
    for kind in KINDS:
        values = run.latency.get(kind, [])
        p50 = f"{statistics.median(values):.1f}" if values else "-"
        p99 = f"{pct(values, 0.99):.1f}" if values else "-"
        print(f"| {kind} | {len(values) + run.errors.get(kind, 0)} | {p50} | {p99} | {run.errors.get(kind, 0)} |")
    for kind, problem in run.first_error.items():
        print(f"first {kind} error: {problem}")
    if args.outage:
        down, up = run.outage
        print(f"\nupstream killed at {down - began:.1f} s, up again at {up - began:.1f} s; errors by when the "
              f"request ran (status: count): " + "; ".join(
                  f"{phase}: {dict(run.phase_errors.get(phase, {}))}" for phase in ("before", "during", "after")))
        return 1 if run.phase_errors.get("before") or run.phase_errors.get("after") else 0
    return 1 if run.errors else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=60.0)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--outage", type=float, default=0.0, help="seconds the upstream is down mid-run")
    args = parser.parse_args()
    upstream = Upstream()
    try:
        upstream.start()
        with tempfile.TemporaryDirectory() as scratch:
            home = Path(scratch)
            (home / "run.yaml").write_text(RUN_YAML.format(url=f"http://127.0.0.1:{upstream.port}/v1"))
            server = ServerProcess(str(home / "run.yaml"), home=home, pythonpath=[HERE.parent]).start(timeout=120)
            try:
                failed = asyncio.run(soak(server.base_url, psutil.Process(server.proc.pid), args, upstream))
            finally:
                server.stop()
            if failed:
                print(f"\nthe server's log ends:\n{server.output()[-3000:]}", file=sys.stderr)
            return failed
    finally:
        upstream.kill()


if __name__ == "__main__":
    sys.exit(main())
