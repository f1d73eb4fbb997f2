"""Agent turn overhead: a non-streamed agent turn versus the one chat completion
it wraps, through `polystack run` with remote::openai on an instant upstream.

usage: python bench/agent_turn.py [--requests 300] [--concurrency 16] [--duration 5] [--history 50]

Starts bench/_instant_upstream.py and a `polystack run` with inference
(remote::openai -> the upstream), safety (pattern-guard) and agents
(inline::meta-reference, SQLite store). Measures, sequentially:
  * POST /v1/inference/chat-completion            (the model call alone)
  * an agent turn on a fresh session              (the same model call + the loop + one store write)
  * the same with input and output pattern-guard shields
  * turns later in a long session (--history turns), where each turn reloads the history
then turns/s with --concurrency sessions running turns at once.
The upstream does no work, so the figures are the stack's own cost.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from proxy import free_port, wait_until_up  # noqa: E402

RUN_YAML = """\
version: '2'
image_name: bench-agents
apis: [inference, safety, agents]
providers:
  inference:
  - provider_id: upstream
    provider_type: remote::openai
    config:
      url: {url}
      api_key: bench
  safety:
  - provider_id: pattern-guard
    provider_type: inline::pattern-guard
    config: {{}}
  agents:
  - provider_id: meta-reference
    provider_type: inline::meta-reference
    config: {{}}
models:
- model_id: bench
  provider_id: upstream
  provider_model_id: bench-upstream
  model_type: llm
shields:
- shield_id: pattern-guard
  provider_id: pattern-guard
"""
MESSAGES = [{"role": "user", "content": "Say something about foxes."}]
SAMPLING = {"strategy": {"type": "top_p", "temperature": 0.7, "top_p": 0.95}, "max_tokens": 32}


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * q))]


async def timed(coro) -> float:
    started = time.perf_counter()
    response = await coro
    response.raise_for_status()
    return (time.perf_counter() - started) * 1000


async def new_agent(client: httpx.AsyncClient, **config) -> str:
    body = {"agent_config": {"model": "bench", "instructions": "You are terse.", "enable_session_persistence": True,
                             "sampling_params": SAMPLING, **config}}
    return (await client.post("/v1/agents", json=body)).json()["agent_id"]


async def new_session(client: httpx.AsyncClient, agent_id: str) -> str:
    return (await client.post(f"/v1/agents/{agent_id}/session", json={"session_name": "bench"})).json()["session_id"]


def turn(client: httpx.AsyncClient, agent_id: str, session_id: str):
    return client.post(f"/v1/agents/{agent_id}/session/{session_id}/turn", json={"messages": MESSAGES, "stream": False})


async def measure(base_url: str, args) -> None:
    async with httpx.AsyncClient(base_url=base_url, timeout=60) as client:
        chat = {"model_id": "bench", "messages": [{"role": "system", "content": "You are terse."}, *MESSAGES],
                "sampling_params": SAMPLING}
        for _ in range(20):  # warm up connections and caches
            await client.post("/v1/inference/chat-completion", json=chat)
        direct = [await timed(client.post("/v1/inference/chat-completion", json=chat)) for _ in range(args.requests)]

        plain = await new_agent(client)
        guarded = await new_agent(client, input_shields=["pattern-guard"], output_shields=["pattern-guard"])
        results = {"chat-completion": direct}
        for name, agent_id in (("agent turn", plain), ("agent turn + 2 shields", guarded)):
            sessions = [await new_session(client, agent_id) for _ in range(args.requests)]
            results[name] = [await timed(turn(client, agent_id, s)) for s in sessions]

        session = await new_session(client, plain)
        history = [await timed(turn(client, plain, session)) for _ in range(args.history)]

        print(f"{'sequential':<28} {'p50 ms':>8} {'p99 ms':>8}")
        for name, values in results.items():
            print(f"{name:<28} {statistics.median(values):>8.2f} {pct(values, 0.99):>8.2f}")
        print(f"{'turn 1-10 of a session':<28} {statistics.median(history[:10]):>8.2f}")
        print(f"{f'turn {args.history - 9}-{args.history} of a session':<28} {statistics.median(history[-10:]):>8.2f}")

        sessions = [await new_session(client, plain) for _ in range(args.concurrency)]
        count = 0
        errors = 0
        deadline = time.perf_counter() + args.duration

        async def worker(session_id: str) -> None:
            nonlocal count, errors
            while time.perf_counter() < deadline:
                response = await turn(client, plain, session_id)
                count += 1
                errors += response.status_code != 200

        began = time.perf_counter()
        await asyncio.gather(*(worker(s) for s in sessions))
        elapsed = time.perf_counter() - began
        print(f"\n{args.concurrency} sessions at once: {count / elapsed:.0f} turns/s, {errors} errors")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--history", type=int, default=50)
    args = parser.parse_args()

    upstream_port, stack_port = free_port(), free_port()
    with tempfile.TemporaryDirectory() as home:
        run_yaml = Path(home) / "run.yaml"
        run_yaml.write_text(RUN_YAML.format(url=f"http://127.0.0.1:{upstream_port}/v1"))
        upstream = subprocess.Popen([sys.executable, str(HERE / "_instant_upstream.py"), str(upstream_port)])
        stack = subprocess.Popen([sys.executable, "-m", "stack", "run", str(run_yaml), "--port", str(stack_port),
                                  "--log-level", "warning"], env={**os.environ, "POLYSTACK_HOME": home})
        try:
            wait_until_up(f"http://127.0.0.1:{upstream_port}/v1/models", upstream)
            wait_until_up(f"http://127.0.0.1:{stack_port}/v1/health", stack)
            asyncio.run(measure(f"http://127.0.0.1:{stack_port}", args))
        finally:
            for proc in (stack, upstream):
                proc.terminate()
                proc.wait(timeout=20)


if __name__ == "__main__":
    main()
