"""Sizing figures for docs/deployment.md: RSS and req/s of `polystack run postgres`
replicas sharing one PostgreSQL (pgserver), inference on an upstream test double.

usage: python bench/replicas.py [--replicas 2] [--duration 10] [--concurrency 16]

Starts pgserver, the upstream double (tests/e2e/upstream_double.py, its own
process: instant chat, hashed-word embeddings) and N replicas of the postgres
distribution with inference pointed at it. Each replica is loaded at once by a
load generator process of its own with a mixed request stream, round robin:
chat completion (through the double), vector query (an embedding, then pgvector),
prompt log write, dataset rows page, GET /v1/models. Prints each replica's RSS
idle and after the load, its req/s, p50/p99 and errors; then one replica alone.
Every process (replicas, PostgreSQL, the double, the generators) shares this
machine's cores: figures are what this box gives, not what a replica needs.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.e2e.upstream_double import CHAT_MODEL, DIMENSION, EMBEDDING_MODEL, on_double  # noqa: E402

ROWS = "".join(json.dumps({"question": f"q{i}", "answer": str(i)}) + "\n" for i in range(100))
REQUESTS = [
    ("POST", "/v1/chat/completions", {"model": CHAT_MODEL, "messages": [{"role": "user", "content": "Say hi."}]}),
    ("POST", "/v1/vector-io/query", {"vector_db_id": "bench", "query": "wild yeast bread"}),
    ("POST", "/v5/prompts/log", {"path": "bench/p", "prompt": {"model": CHAT_MODEL}, "output": "logged"}),
    ("GET", "/v1/datasetio/rows?dataset_id=bench&rows_in_page=10", None),
    ("GET", "/v1/models", None),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def call(base: str, method: str, path: str, body: dict | None = None) -> dict:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(base + path, data=data, method=method, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        text = response.read()
    return json.loads(text) if text else {}


def wait_up(base: str, proc: subprocess.Popen, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{base} exited with {proc.returncode}")
        try:
            call(base, "GET", "/v1/health")
            return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"{base} not up after {timeout} s")


async def _load(base: str, concurrency: int, duration: float) -> dict:
    import aiohttp

    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + duration
    async with aiohttp.ClientSession(base, connector=aiohttp.TCPConnector(limit=concurrency)) as session:
        async def worker(offset: int) -> None:
            nonlocal errors
            i = offset
            while time.perf_counter() < deadline:
                method, path, body = REQUESTS[i % len(REQUESTS)]
                i += 1
                started = time.perf_counter()
                try:
                    async with session.request(method, path, json=body) as r:
                        await r.read()
                        errors += r.status != 200
                except aiohttp.ClientError:
                    errors += 1
                latencies.append((time.perf_counter() - started) * 1000)

        began = time.perf_counter()
        await asyncio.gather(*(worker(k) for k in range(concurrency)))
        elapsed = time.perf_counter() - began
    latencies.sort()
    return {"rps": len(latencies) / elapsed, "p50": latencies[len(latencies) // 2],
            "p99": latencies[int(len(latencies) * 0.99)], "errors": errors, "requests": len(latencies)}


def load(bases: list[str], concurrency: int, duration: float) -> list[dict]:
    """Load every replica at once, each from a generator process of its own."""
    procs = [subprocess.Popen([sys.executable, __file__, "--_load", base, str(concurrency), str(duration)],
                              stdout=subprocess.PIPE, text=True) for base in bases]
    return [json.loads(p.communicate()[0]) for p in procs]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--replicas", type=int, default=2)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--_load", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args._load:
        base, concurrency, duration = args._load
        print(json.dumps(asyncio.run(_load(base, int(concurrency), float(duration)))))
        return

    import pgserver
    from psycopg.conninfo import conninfo_to_dict

    root = Path(tempfile.mkdtemp(prefix="polystack-bench-replicas-"))
    procs: list[subprocess.Popen] = []
    server = pgserver.get_server(str(root / "pg"), cleanup_mode="stop")
    try:
        params = conninfo_to_dict(server.get_uri())
        upstream_port = free_port()
        procs.append(subprocess.Popen([sys.executable, "-m", "tests.e2e.upstream_double", str(upstream_port)], cwd=REPO))
        (root / "run.yaml").write_text(yaml.safe_dump(on_double("postgres", f"http://127.0.0.1:{upstream_port}/v1")))
        env = {**os.environ, "POSTGRES_HOST": params["host"], "POSTGRES_DB": "postgres", "POSTGRES_USER": params["user"],
               "PYTHONPATH": str(REPO)}
        bases, replicas = [], []
        for i in range(args.replicas):
            port = free_port()
            home = root / f"home-{i}"
            home.mkdir()
            proc = subprocess.Popen([sys.executable, "-m", "stack", "run", str(root / "run.yaml"), "--port", str(port),
                                     "--log-level", "warning"], env={**env, "POLYSTACK_HOME": str(home)}, cwd=REPO)
            procs.append(proc)
            replicas.append(proc)
            bases.append(f"http://127.0.0.1:{port}")
        for base, proc in zip(bases, replicas):
            wait_up(base, proc)
        first = bases[0]
        call(first, "POST", "/v1/vector-dbs", {"vector_db_id": "bench", "embedding_model": EMBEDDING_MODEL,
                                               "embedding_dimension": DIMENSION})
        call(first, "POST", "/v1/vector-io/insert", {"vector_db_id": "bench", "chunks": [
            {"content": f"chunk {i} about bread and yeast", "metadata": {"document_id": f"d{i}"}} for i in range(200)]})
        call(first, "POST", "/v1/datasets", {"dataset_id": "bench", "metadata": {"format": "jsonl"},
                                             "dataset_schema": {"question": {"type": "string"}, "answer": {"type": "string"}},
                                             "url": {"uri": "data:application/jsonl;base64," + base64.b64encode(ROWS.encode()).decode()}})
        load(bases, 4, 2.0)  # warm-up: every replica has opened its pools and caches
        idle = [rss_mib(p.pid) for p in replicas]
        together = load(bases, args.concurrency, args.duration)
        after = [rss_mib(p.pid) for p in replicas]
        print(f"{len(bases)} replicas loaded at once, concurrency {args.concurrency} each, {args.duration:.0f} s, "
              f"{os.cpu_count()} CPUs shared by everything")
        print("| replica | RSS idle (MiB) | RSS after load (MiB) | req/s | p50 ms | p99 ms | errors |")
        print("|---|---|---|---|---|---|---|")
        for i, (r, before, later) in enumerate(zip(together, idle, after)):
            print(f"| {i} | {before:.0f} | {later:.0f} | {r['rps']:.0f} | {r['p50']:.1f} | {r['p99']:.1f} | {r['errors']} |")
        print(f"| all | | | {sum(r['rps'] for r in together):.0f} | | | {sum(r['errors'] for r in together)} |")
        alone = load(bases[:1], args.concurrency, args.duration)[0]
        print(f"one replica alone: {alone['rps']:.0f} req/s, p50 {alone['p50']:.1f} ms, p99 {alone['p99']:.1f} ms, "
              f"errors {alone['errors']}; RSS {rss_mib(replicas[0].pid):.0f} MiB")
    finally:
        for proc in reversed(procs):
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
        server.cleanup()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
