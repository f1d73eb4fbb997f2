"""Proxy overhead: POST /v1/chat/completions through `polystack run` (remote::openai)
versus straight to the upstream.

usage: python bench/proxy.py [--duration 5] [--concurrency 1,16,64] [--generator wrk|aiohttp]
                             [--stream-requests 300] [--tracing [--sample-rate 1.0]] [--tracing-config NAME=YAML ...]
                             [--rounds 1] [--restarts 1] [--control]
                             [--base-tree DIR] [--litellm-venv PATH] [--no-direct] [--pin]

Starts an instant OpenAI-compatible upstream (bench/_instant_upstream.py, its
own process) and a `polystack run` whose remote::openai provider points at it,
then loads each with a client load generator in a third process (`wrk` when
installed, else an aiohttp-based one) at each concurrency: p50 / p99 latency,
req/s and errors. With --tracing, a second `polystack run` that traces every request
(inline::meta-reference telemetry, sqlite sink) is loaded beside it; --tracing-config NAME=YAML
(repeatable) loads one traced proxy per telemetry config instead. With --rounds N
every target is loaded N times, interleaved (the order flips each round), and the
table gives each one's median: other load on the machine then hits both alike.
--control adds a second untraced proxy like the first; its gap to the first, paired
round by round as tracing's is, shows what the machine's noise alone makes of a gap.
The proxies of one start share a hash seed (PYTHONHASHSEED: dict probes, and with them a
request's instructions, otherwise differ from process to process). Two identical processes
still differ by a few per cent, for as long as they live (memory layout); --restarts N starts
every polystack proxy afresh N times (seed 0, 1, ...), --rounds rounds each, and pools the
rounds, so that no one pair of processes decides a gap.
--base-tree DIR also starts the same proxies from another checkout (a git worktree of
the code before a change: `git worktree add --detach /tmp/base COMMIT`), so before
and after are measured interleaved in one run. --litellm-venv PATH adds a LiteLLM proxy
(one worker, the same upstream) from a separate virtual environment made with
`python -m venv PATH && PATH/bin/pip install 'litellm[proxy]'`.
Then streams: the time to the first SSE chunk, sequentially, direct and proxied. Every process shares the same cores, so the generator and
the upstream take CPU the proxy would otherwise have. --pin keeps the proxies (and their
span writer processes) on CPU 0 and everything else on the other CPUs: the proxy's own CPU
per request then decides its req/s, and runs stop depending on where the scheduler put
whom (that is the setting to compare tracing off and on; the default is the targets' setting).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
BODY = json.dumps({
    "model": "bench",
    "messages": [{"role": "system", "content": "You are terse."},
                 {"role": "user", "content": "Say something about foxes."}],
    "max_tokens": 32, "temperature": 0.7,
})
# every target gets it: the LiteLLM proxy refuses to start without a master key; the others ignore it
LITELLM_KEY = "sk-bench-litellm"
HEADERS = {"Content-Type": "application/json", "Authorization": f"Bearer {LITELLM_KEY}"}
RUN_YAML = """\
version: '2'
image_name: bench-proxy
apis: [inference]
providers:
  inference:
  - provider_id: upstream
    provider_type: remote::openai
    config:
      url: {url}
      api_key: bench
models:
- model_id: bench
  provider_id: upstream
  provider_model_id: bench-upstream
  model_type: llm
"""

# --tracing: a second proxy that traces every request into a SQLite span store; --tracing-config:
# one per telemetry config
TRACED_TEMPLATE = RUN_YAML.replace("apis: [inference]", "apis: [inference, telemetry]").replace("models:", """\
  telemetry:
  - provider_id: meta-reference
    provider_type: inline::meta-reference
    config: {{{telemetry}{sample_rate}}}
models:""")
TRACED_RUN_YAML = TRACED_TEMPLATE.replace("{telemetry}", "sinks: [sqlite]")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid``, its threads and its running child processes (the
    span writer) so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    own = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return own + sum(cpu_seconds(int(child)) for child in children)


def health(chat_url: str) -> dict:
    with urllib.request.urlopen(chat_url.replace("/chat/completions", "/health"), timeout=10) as r:
        return json.loads(r.read())


def backlog_of(chat_url: str) -> int:
    """Spans the traced proxy's span writer process has yet to write (0 for one without a backlog)."""
    return health(chat_url).get("telemetry", {}).get("span_writer_backlog_spans", 0)


def drain(chat_url: str) -> float:
    """Seconds a trace query takes: it flushes the proxy's buffer and waits until its span
    writer wrote everything (the writer's backlog, at normal priority where it may switch)."""
    started = time.monotonic()
    with urllib.request.urlopen(chat_url.replace("/chat/completions", "/telemetry/traces?limit=1"), timeout=300) as r:
        r.read()
    return time.monotonic() - started


def span_writer_of(chat_url: str) -> tuple[int | None, float]:
    """The traced proxy's span writer process and its CPU seconds so far."""
    pid = health(chat_url).get("telemetry", {}).get("span_writer_pid")
    return pid, (cpu_seconds(pid) if pid else 0.0)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_up(url: str, proc: subprocess.Popen, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{proc.args} exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except urllib.error.HTTPError:
            return  # it answers
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"{url} not up after {timeout}s")


# -- load generators ------------------------------------------------------------------------


#: --pin: the CPUs of the proxies (and their children: the span writer) and of everything else
#: (the upstream, the load generator); empty: the scheduler places every process
PIN: dict[str, set[int]] = {}


def pinned(role: str):
    """A ``preexec_fn`` that keeps the process on ``role``'s CPUs under --pin; None without it."""
    cpus = PIN.get(role)
    return None if cpus is None else (lambda: os.sched_setaffinity(0, cpus))


def run_wrk(url: str, concurrency: int, duration: float) -> dict:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as lua:
        lua.write(f'wrk.method = "POST"\nwrk.body = {json.dumps(BODY)}\nwrk.headers["Content-Type"] = "application/json"\n'
                  f'wrk.headers["Authorization"] = "Bearer {LITELLM_KEY}"\n')
    try:
        out = subprocess.run(
            ["wrk", "-t1", f"-c{concurrency}", f"-d{max(1, round(duration))}s", "--latency", "--timeout", "10s", "-s", lua.name, url],
            capture_output=True, text=True, check=True, preexec_fn=pinned("rest"),
        ).stdout
    finally:
        os.unlink(lua.name)
    def latency(pct: str) -> float:
        value, unit = re.search(rf"^\s+{pct}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M).groups()
        return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    errors = int(non_2xx.group(1)) if non_2xx else 0
    errors += sum(int(g) for g in socket_errors.groups()) if socket_errors else 0
    return {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
            "p50": latency("50"), "p99": latency("99"), "errors": errors}


async def _aiohttp_load(url: str, concurrency: int, duration: float) -> dict:
    import aiohttp

    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + duration
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:
        async def worker() -> None:
            nonlocal errors
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                try:
                    async with session.post(url, data=BODY, headers=HEADERS) as r:
                        await r.read()
                        if r.status != 200:
                            errors += 1
                except aiohttp.ClientError:
                    errors += 1
                latencies.append((time.perf_counter() - started) * 1000)

        began = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - began
    latencies.sort()
    return {"rps": len(latencies) / elapsed, "p50": latencies[len(latencies) // 2],
            "p99": latencies[int(len(latencies) * 0.99)], "errors": errors}


def run_aiohttp(url: str, concurrency: int, duration: float) -> dict:
    """The aiohttp generator in its own process, like wrk."""
    out = subprocess.run([sys.executable, __file__, "--_load", url, str(concurrency), str(duration)],
                         capture_output=True, text=True, check=True, preexec_fn=pinned("rest")).stdout
    return json.loads(out)


# -- streaming ------------------------------------------------------------------------------


async def _first_chunk_times(url: str, n: int) -> dict:
    import aiohttp

    body = json.dumps({**json.loads(BODY), "stream": True})
    first, total, errors = [], [], 0
    async with aiohttp.ClientSession() as session:
        for i in range(n + 20):  # the first 20 warm up
            started = time.perf_counter()
            async with session.post(url, data=body, headers=HEADERS) as r:
                got_first = None
                async for line in r.content:
                    if got_first is None and line.startswith(b"data: {"):
                        got_first = time.perf_counter()
                    if b'"error"' in line:
                        errors += 1
                done = time.perf_counter()
            if i >= 20 and got_first is not None:
                first.append((got_first - started) * 1000)
                total.append((done - started) * 1000)
    return {"first_p50": statistics.median(first), "total_p50": statistics.median(total), "errors": errors}


LITELLM_YAML = """\
model_list:
- model_name: bench
  litellm_params:
    model: openai/bench-upstream
    api_base: {url}
    api_key: bench
"""


def start_litellm(venv: Path, upstream_url: str, home: Path) -> tuple[subprocess.Popen, str]:
    """A LiteLLM proxy (one worker) in front of the same upstream, from its own virtual environment."""
    config = home / "litellm.yaml"
    config.write_text(LITELLM_YAML.format(url=upstream_url))
    port = free_port()
    proc = subprocess.Popen(
        [str(venv / "bin" / "litellm"), "--config", str(config), "--host", "127.0.0.1", "--port", str(port),
         "--num_workers", "1"],
        env={**os.environ, "LITELLM_LOG": "ERROR", "PYTHONPATH": "", "LITELLM_MASTER_KEY": LITELLM_KEY},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=home, preexec_fn=pinned("proxy"),
    )
    url = f"http://127.0.0.1:{port}"
    wait_until_up(url + "/health/liveliness", proc, timeout=120)
    return proc, url + "/v1/chat/completions"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=5)
    parser.add_argument("--concurrency", default="1,16,64")
    parser.add_argument("--generator", choices=["wrk", "aiohttp"], default="wrk" if shutil.which("wrk") else "aiohttp")
    parser.add_argument("--stream-requests", type=int, default=300)
    parser.add_argument("--tracing", action="store_true", help="also load a proxy with tracing on (sqlite sink)")
    parser.add_argument("--sample-rate", type=float, default=1.0, help="the traced proxy's sample_rate")
    parser.add_argument("--tracing-config", action="append", metavar="NAME=YAML",
                        help="a traced proxy per option (instead of the one with sinks: [sqlite]), its telemetry "
                        "config's fields as YAML flow mapping items, e.g. 'no store=sinks: []' or "
                        "'thread=sinks: [sqlite], span_writer: thread'")
    parser.add_argument("--rounds", type=int, default=1, help="load every target this many times, interleaved")
    parser.add_argument("--restarts", type=int, default=1,
                        help="start the polystack proxies this many times, --rounds rounds each (pooled)")
    parser.add_argument("--control", action="store_true",
                        help="also load a second untraced proxy like the first: its gap to the first, paired "
                        "round by round as tracing's is, is what the machine's noise alone makes")
    parser.add_argument("--base-tree", type=Path, help="also run the proxies from this checkout (code before a change)")
    parser.add_argument("--litellm-venv", type=Path, help="also run a LiteLLM proxy from this virtual environment")
    parser.add_argument("--no-direct", action="store_true", help="do not load the upstream directly")
    parser.add_argument("--pin", action="store_true",
                        help="keep the proxies (and their span writers) on CPU 0 and the upstream and load "
                        "generator on the others: the proxy's own CPU then bounds req/s, whatever the scheduler "
                        "would have placed where")
    parser.add_argument("--_load", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args._load:
        url, c, d = args._load
        print(json.dumps(asyncio.run(_aiohttp_load(url, int(c), float(d)))))
        return

    load = run_wrk if args.generator == "wrk" else run_aiohttp
    if args.pin:
        if (os.cpu_count() or 1) < 2:
            raise SystemExit("--pin needs two CPUs or more")
        PIN.update(proxy={0}, rest=set(range(1, os.cpu_count())))
    up_port = free_port()
    procs = []
    with tempfile.TemporaryDirectory() as home:
        try:
            upstream = subprocess.Popen([sys.executable, str(HERE / "_instant_upstream.py"), str(up_port)],
                                        preexec_fn=pinned("rest"))
            procs.append(upstream)
            up_url = f"http://127.0.0.1:{up_port}/v1"
            wait_until_up(up_url + "/models", upstream)
            targets = {} if args.no_direct else {"direct": up_url + "/chat/completions"}
            proxies = {"polystack": (RUN_YAML, None)}
            traced = dict(v.split("=", 1) for v in args.tracing_config or [])
            if args.tracing and not traced:
                traced = {"": "sinks: [sqlite]"}
            for label, telemetry in traced.items():
                name = "polystack, tracing on" + (f" ({label})" if label else "")
                proxies[name] = (TRACED_TEMPLATE.replace("{telemetry}", telemetry.replace("{", "{{").replace("}", "}}")), None)
            if args.control:
                proxies["polystack, control"] = (RUN_YAML, None)
            if args.base_tree:
                for name, (template, _) in list(proxies.items()):
                    proxies[name.replace("polystack", "base")] = (template, args.base_tree.resolve())
            pids: dict[str, int] = {}
            started: dict[str, subprocess.Popen] = {}

            def start_proxies(restart: int) -> None:
                """Every polystack proxy, (re)started: fresh processes with fresh homes."""
                for proc in started.values():
                    stop(proc)
                    procs.remove(proc)
                for i, (name, (template, tree)) in enumerate(proxies.items()):
                    run_yaml = Path(home) / f"run{i}.yaml"
                    # sample_rate only when asked for: a base tree from before it existed refuses the key
                    sampling = f", sample_rate: {args.sample_rate}" if args.sample_rate != 1.0 else ""
                    run_yaml.write_text(template.format(url=up_url, sample_rate=sampling))
                    port = free_port()
                    # one hash seed for every proxy of a start: otherwise each process's dicts probe
                    # differently, and identical proxies differ by several per cent (see --restarts)
                    env = {**os.environ, "POLYSTACK_HOME": str(Path(home) / f"home{i}.{restart}"),
                           "PYTHONHASHSEED": str(restart)}
                    if tree is not None:  # `-m stack` imports from the working directory first
                        env["PYTHONPATH"] = str(tree)
                    proxy = subprocess.Popen(
                        [sys.executable, "-m", "stack", "run", str(run_yaml), "--host", "127.0.0.1",
                         "--port", str(port), "--log-level", "warning"],
                        env=env, cwd=tree or HERE.parent, preexec_fn=pinned("proxy"),
                    )
                    procs.append(proxy)
                    started[name] = proxy
                    pids[name] = proxy.pid
                    px_url = f"http://127.0.0.1:{port}"
                    wait_until_up(px_url + "/v1/health", proxy)
                    targets[name] = px_url + "/v1/chat/completions"

            start_proxies(0)
            if args.litellm_venv:
                proxy, url = start_litellm(args.litellm_venv, up_url, Path(home))
                procs.append(proxy)
                pids["litellm"] = proxy.pid
                targets["litellm"] = url
            print(f"generator: {args.generator}; {args.duration:g} s per run, {args.rounds} round(s) (medians)"
                  + (f" in each of {args.restarts} starts; " if args.restarts > 1 else "; ")
                  + (f"proxies pinned to CPU 0, the rest to CPUs {sorted(PIN['rest'])}" if PIN
                     else f"{os.cpu_count()} cores shared by all processes"))
            print("| target | concurrency | req/s | p50 ms | p99 ms | errors | proxy CPU per request |")
            print("|---|---|---|---|---|---|---|")
            runs: dict[tuple[str, int], list[dict]] = {}
            traced_names = [name for name in targets if "tracing on" in name]
            served = dict.fromkeys(traced_names, 0.0)
            writer_cpu = dict.fromkeys(traced_names, 0.0)
            writers = {}
            for round_ in range(args.rounds * args.restarts):
                if round_ and round_ % args.rounds == 0:  # the next start: what the writers used so far first
                    for name, (pid, cpu) in writers.items():
                        writer_cpu[name] += cpu_seconds(pid) - cpu if pid is not None else 0.0
                    start_proxies(round_ // args.rounds)
                if round_ % args.rounds == 0:
                    writers = {name: span_writer_of(targets[name]) for name in traced_names}
                for c in [int(x) for x in args.concurrency.split(",")]:
                    names = list(targets) if round_ % 2 == 0 else list(reversed(targets))
                    for name in names:
                        url = targets[name]
                        warm = load(url, c, 1)  # warm-up: connections, caches
                        cpu = cpu_seconds(pids[name]) if name in pids else None
                        r = load(url, c, args.duration)
                        if name in served:
                            served[name] += warm["rps"] * 1 + r["rps"] * args.duration
                        if writers.get(name, (None,))[0] is not None:
                            # what its writer left for later; written before the next run, which
                            # would otherwise pay for it
                            r["backlog"], r["drain"] = backlog_of(url), drain(url)
                        # CPU per request hardly depends on what else runs on the machine, unlike req/s
                        r["cpu"] = None if cpu is None else (cpu_seconds(pids[name]) - cpu) / (r["rps"] * args.duration)
                        runs.setdefault((name, c), []).append(r)
            results = {}
            for c in [int(x) for x in args.concurrency.split(",")]:
                for name in targets:
                    rs = runs[name, c]
                    r = results[name, c] = {k: statistics.median(x[k] for x in rs) for k in ("rps", "p50", "p99")}
                    r["errors"] = sum(x["errors"] for x in rs)
                    per = "—" if rs[0]["cpu"] is None else f"{statistics.median(x['cpu'] for x in rs) * 1e6:,.0f} µs"
                    print(f"| {name} | {c} | {r['rps']:,.0f} | {r['p50']:.2f} | {r['p99']:.2f} | {r['errors']} | {per} |",
                          flush=True)
            for name, url in targets.items():  # what tracing kept: a full buffer drops spans (counted)
                if "tracing on" in name:
                    print(f"{name}: telemetry {health(url).get('telemetry')}")
            for name, (pid, cpu) in writers.items():
                if pid is None:  # no span store: no writer process
                    continue
                writer_cpu[name] += cpu_seconds(pid) - cpu
                for c in [int(x) for x in args.concurrency.split(",")]:
                    print(f"{name}, c={c}: span writer backlog at each run's end "
                          f"{[r['backlog'] for r in runs[name, c]]} spans; a trace query "
                          f"then took {[round(r['drain'], 2) for r in runs[name, c]]} s (it waits for the writing)")
                # a writer at idle priority catches up after the load: its whole CPU, not the share
                # that fell inside the measured runs, is what tracing cost
                if pid is not None:
                    cpu = writer_cpu[name]
                    print(f"{name}: span writer process {cpu:.2f} s of CPU over the whole run, "
                          f"{cpu / served[name] * 1e6:.1f} µs per request ({served[name]:,.0f} requests, "
                          "warm-ups included, each run's backlog written)")
            for c in [int(x) for x in args.concurrency.split(",")]:
                # tracing's cost round by round: each traced run against the untraced run of the same
                # tree in the same round (minutes apart at most), which cancels the drift between rounds
                for name in targets:
                    if "tracing on" not in name and not name.endswith(", control"):
                        continue
                    plain = name.split(", tracing on")[0].removesuffix(", control")
                    paired = [100 * (t["rps"] / p["rps"] - 1) for t, p in zip(runs[name, c], runs[plain, c])]
                    gaps = sorted(paired)
                    print(f"{name} against {plain}, c={c}: req/s {statistics.median(gaps):+.1f} % (median of "
                          f"{len(gaps)} rounds; each round: {', '.join(f'{g:+.1f}' for g in gaps)} %)")
                    if args.restarts > 1:  # each start's own median: how much the processes themselves differ
                        starts = [statistics.median(paired[i:i + args.rounds]) for i in range(0, len(paired), args.rounds)]
                        print(f"  per start: {', '.join(f'{g:+.1f}' for g in starts)} %")
            for c in [int(x) for x in args.concurrency.split(",")]:
                for name in pids:
                    if "direct" not in targets:
                        break
                    added = results[name, c]["p50"] - results["direct", c]["p50"]
                    print(f"{name}: added p50 at concurrency {c}: {added:.2f} ms")
            if args.stream_requests:
                print(f"\nstreaming, {args.stream_requests} sequential requests (6 chunks + [DONE]):")
                print("| target | first chunk p50 ms | whole stream p50 ms | errors |")
                print("|---|---|---|---|")
                for name, url in targets.items():
                    s = asyncio.run(_first_chunk_times(url, args.stream_requests))
                    print(f"| {name} | {s['first_p50']:.2f} | {s['total_p50']:.2f} | {s['errors']} |", flush=True)
        finally:
            for proc in reversed(procs):
                stop(proc)


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()


if __name__ == "__main__":
    main()
