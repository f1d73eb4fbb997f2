"""The web console's API calls against a server holding a lot: 100k spans, 10k trajectories, 10k prompt logs.

usage (from the repository root, so this checkout's code is imported):
    python -m bench.console [--spans 100000] [--trajectories 10000] [--logs 10000] [--repeat 20]

Writes the spans straight into the starter's span store (SQLite, as the telemetry
provider writes them: a row per trace) before the server starts, then starts
`polystack run starter` on a free loopback port and logs the trajectories and the
prompt logs through the API. Then, for each console page, issues the calls that
page makes (concurrently, as the browser does) ``--repeat`` times and prints the
median and the slowest wall time per page. docs/performance.md records the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from stack import tracing
from stack.storage import SqliteStoreConfig, sqlstore_from_config

MODEL = "SmolLM2-135M-Instruct"
SPANS_PER_TRACE = 4  # a chat request: the request, the router, the provider, the upstream call


async def fill_spans(db_path: Path, spans: int) -> None:
    from providers.inline.telemetry.meta_reference.sinks import SpanStoreSink

    sink = SpanStoreSink(await sqlstore_from_config(SqliteStoreConfig(db_path=str(db_path)), default_path=db_path))
    await sink.initialize()
    start = time.time_ns() - spans * 1_000_000
    batch: list[tracing.FinishedSpan] = []
    for t in range(spans // SPANS_PER_TRACE):
        trace_id, at = tracing.new_trace_id(), start + t * SPANS_PER_TRACE * 1_000_000
        status = 404 if t % 50 == 0 else 200
        ids = [tracing.new_span_id() for _ in range(SPANS_PER_TRACE)]
        names = ["POST /v1/chat/completions", "router inference.openai_chat_completion",
                 "provider inference.openai_chat_completion", "upstream POST /v1/chat/completions"]
        for depth, (span_id, name) in enumerate(zip(ids, names)):
            attributes = {"http.response.status_code": status, "url.path": "/v1/chat/completions"} if depth == 0 else {
                "gen_ai.request.model": f"model-{t % 5}", "gen_ai.usage.input_tokens": 20 + t % 30,
                "gen_ai.usage.output_tokens": 40 + t % 60}
            batch.append(tracing.FinishedSpan(trace_id, span_id, ids[depth - 1] if depth else None, name,
                                              at + depth * 1000, at + 900_000 - depth * 1000, "ok", depth == 0,
                                              attributes, None, None))
        if len(batch) >= 4000:
            await sink.export(batch, [])
            batch = []
    if batch:
        await sink.export(batch, [])
    await sink.close()


def trajectory(i: int) -> dict:
    return {"messages_and_choices": [
        {"role": "system", "content": "You solve arithmetic."},
        {"role": "user", "content": f"What is {i} + {i}?"},
        {"finish_reason": "stop", "index": 0, "message": {"role": "assistant", "content": f"It is {2 * i}."}},
    ], "reward": random.random(), "metrics": {"correct": i % 3 == 0, "tokens": 12 + i % 7}}


def fill_api(client: httpx.Client, trajectories: int, logs: int) -> dict:
    model = client.post("/v1/preview/models", json={"project": "bench", "name": "console", "base_model": MODEL}).json()
    per_call, per_group, n = 100, 4, 0
    while n < trajectories:  # 100 trajectories a log call, groups of 4, train and val
        groups = [{"trajectories": [trajectory(n + g * per_group + k) for k in range(per_group)]}
                  for g in range(per_call // per_group)]
        split = "val" if (n // per_call) % 5 == 4 else "train"
        client.post(f"/v1/preview/models/{model['id']}/log", json={"split": split, "trajectory_groups": groups}).raise_for_status()
        n += per_call
    made = []
    for start in range(0, logs, 200):  # 200 logs a request, ten projects, sessions of 20 logs
        made += client.post("/v4/logs", json=[{
            "project": f"project-{i % 10}", "config": {"model": MODEL}, "session_reference_id": f"conv-{i // 20}",
            "messages": [{"role": "user", "content": f"Question {i}?"}], "output": f"Answer {i}.",
        } for i in range(start, min(start + 200, logs))]).json()
    return {"model": model, "log": made[len(made) // 2]}


async def page_calls(client: httpx.AsyncClient, calls: list[str]) -> list[httpx.Response]:
    return await asyncio.gather(*(client.get(url) for url in calls))


async def traces_page(client: httpx.AsyncClient, query: str) -> None:
    """The traces list: a page of traces, then each shown row's root span (as traces.js does)."""
    traces = (await client.get(f"/v1/telemetry/traces?limit=21&{query}")).json()["data"]
    await page_calls(client, [f"/v1/telemetry/traces/{t['trace_id']}/spans/{t['root_span_id']}" for t in traces[:20]])


async def trace_page(client: httpx.AsyncClient, trace_id: str) -> None:
    trace = (await client.get(f"/v1/telemetry/traces/{trace_id}")).json()
    (await client.get(f"/v1/telemetry/spans/{trace['root_span_id']}/tree")).raise_for_status()


async def time_pages(base_url: str, filled: dict, repeat: int) -> list[tuple[str, float, float]]:
    model_id, log = filled["model"]["id"], filled["log"]
    status_404 = '[{"key":"http.response.status_code","op":"eq","value":404}]'
    async with httpx.AsyncClient(base_url=base_url, timeout=120) as client:
        some_trace = (await client.get("/v1/telemetry/traces?limit=1&offset=500")).json()["data"][0]["trace_id"]
        pages = {
            "models & providers": lambda: page_calls(client, ["/v1/models", "/v1/inspect/providers", "/v1/health"]),
            "traces, first page": lambda: traces_page(client, "offset=0"),
            "traces, page 500": lambda: traces_page(client, "offset=10000"),
            "traces, filtered (status 404)": lambda: traces_page(client, f"offset=0&attribute_filters={status_404}"),
            "a trace's waterfall": lambda: trace_page(client, some_trace),
            "training runs list": lambda: page_calls(client, ["/v1/preview/models?limit=20"]),
            "a run: charts, checkpoints, step groups": lambda: page_calls(client, [
                f"/v1/preview/models/{model_id}", f"/v1/preview/models/{model_id}/metrics",
                f"/v1/preview/models/{model_id}/checkpoints?limit=20",
                f"/v1/preview/models/{model_id}/trajectories?step=0&limit=10"]),
            "a run's step groups, page 200": lambda: page_calls(client, [
                f"/v1/preview/models/{model_id}/trajectories?step=0&limit=10&offset=2000"]),
            "prompt logs, first page": lambda: page_calls(client, ["/v1/prompt-log-projects?limit=100",
                                                                   "/v1/prompt-logs?limit=20"]),
            "prompt logs, page 450": lambda: page_calls(client, ["/v1/prompt-logs?limit=20&offset=9000"]),
            "prompt logs of a project": lambda: page_calls(client, [f"/v1/prompt-logs?limit=20&project_id={log['project_id']}"]),
            "prompt logs of a session": lambda: page_calls(client, [f"/v1/prompt-logs?limit=20&session_id={log['session_id']}"]),
            "a prompt log": lambda: page_calls(client, [f"/v1/prompt-logs/{log['id']}"]),
            "eval jobs": lambda: page_calls(client, ["/v1/jobs?kind=eval&limit=20"]),
        }
        out = []
        for name, load in pages.items():
            await load()  # warm
            times = []
            for _ in range(repeat):
                started = time.perf_counter()
                await load()
                times.append((time.perf_counter() - started) * 1000)
            out.append((name, statistics.median(times), max(times)))
        return out


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spans", type=int, default=100_000)
    parser.add_argument("--trajectories", type=int, default=10_000)
    parser.add_argument("--logs", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as home:
        data = Path(home) / "starter"
        data.mkdir()
        started = time.perf_counter()
        asyncio.run(fill_spans(data / "trace_store.db", args.spans))
        print(f"{args.spans} spans written in {time.perf_counter() - started:.1f} s")
        port = free_port()
        env = {**os.environ, "POLYSTACK_HOME": home}
        server = subprocess.Popen([sys.executable, "-m", "stack", "run", "starter", "--port", str(port),
                                   "--log-level", "warning"], env=env)
        base_url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if httpx.get(base_url + "/v1/health").status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise SystemExit("the server did not start")
                time.sleep(0.1)
            client = httpx.Client(base_url=base_url, timeout=300)
            started = time.perf_counter()
            filled = fill_api(client, args.trajectories, args.logs)
            print(f"{args.trajectories} trajectories and {args.logs} prompt logs logged in "
                  f"{time.perf_counter() - started:.1f} s")
            time.sleep(5)  # let the background model loads settle
            print(f"{'page':44} {'median ms':>10} {'max ms':>8}")
            for name, median, worst in asyncio.run(time_pages(base_url, filled, args.repeat)):
                print(f"{name:44} {median:10.1f} {worst:8.1f}")
        finally:
            server.terminate()
            server.wait(30)


if __name__ == "__main__":
    main()
