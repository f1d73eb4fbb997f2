"""Tracing's cost in machine instructions per request of a live `polystack run`, uvicorn and its
sockets included (bench/tracing_instructions.py calls the app in-process and leaves them out).

Each mode's proxy (bench/proxy.py's run configs: ``plain`` without telemetry, ``on`` tracing
every request into the sqlite sink) runs under valgrind's callgrind; after a warm-up its counters
are zeroed (``callgrind_control -z``), exactly ``--requests`` requests are sent 16 at a time and
the counts dumped (``-d``): what the proxy did between the two, idle turns included. The span writer is a
process of its own that callgrind does not follow: its work is not counted here (bench/proxy.py
reports its CPU). ``--cache-sim`` also counts first-level and last-level cache misses (a miss
costs what tens of instructions do, and the counts alone cannot show it).

usage: python bench/tracing_live_instructions.py [--requests 2000] [--modes plain,on] [--cache-sim]
                                                 [--base-tree DIR] [--keep DIR]

Needs valgrind. Every mode's proxy runs at once, each loaded in turn; ~2 minutes.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import proxy  # noqa: E402  (bench/)

#: the events callgrind reports, and what the table calls them
EVENTS = {"Ir": "instructions", "D1mr": "D1 read misses", "D1mw": "D1 write misses", "DLmr": "LL read misses",
          "DLmw": "LL write misses", "I1mr": "I1 misses"}


async def send(url: str, requests: int, concurrency: int = 16) -> int:
    """``requests`` chat requests, ``concurrency`` at a time; how many did not answer 200."""
    import aiohttp

    failures = 0
    queue = iter(range(requests))
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:
        async def worker() -> None:
            nonlocal failures
            for _ in queue:
                async with session.post(url, data=proxy.BODY, headers=proxy.HEADERS) as r:
                    await r.read()
                    failures += r.status != 200

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return failures


def callgrind(pid: int, *args: str) -> None:
    subprocess.run(["callgrind_control", *args, str(pid)], check=True, capture_output=True)


def latest_dump(out_dir: Path, pid: int) -> Path:
    return max(out_dir.glob(f"callgrind.out.{pid}*"), key=lambda path: path.stat().st_mtime)


def totals(out_dir: Path, pid: int) -> dict[str, int]:
    """The events of the dump callgrind wrote for ``pid`` (the last one)."""
    text = latest_dump(out_dir, pid).read_text()
    names = re.search(r"^events:\s+(.+)$", text, re.M).group(1).split()
    values = [int(v) for v in re.search(r"^summary:\s+(.+)$", text, re.M).group(1).split()]
    return dict(zip(names, values))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--warmup", type=int, default=600)
    parser.add_argument("--modes", default="plain,on")
    parser.add_argument("--cache-sim", action="store_true")
    parser.add_argument("--base-tree", type=Path)
    parser.add_argument("--keep", type=Path, help="copy each mode's dump here (for callgrind_annotate)")
    args = parser.parse_args()
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed (apt-get install valgrind)")
    templates = {"plain": proxy.RUN_YAML, "on": proxy.TRACED_RUN_YAML}
    trees = {"after": HERE.parent}
    if args.base_tree:
        trees["before"] = args.base_tree.resolve()
    modes = args.modes.split(",")
    procs: list[subprocess.Popen] = []
    with tempfile.TemporaryDirectory() as home:
        out_dir = Path(home) / "callgrind"
        out_dir.mkdir()
        try:
            up_port = proxy.free_port()
            upstream = subprocess.Popen([sys.executable, str(HERE / "_instant_upstream.py"), str(up_port)])
            procs.append(upstream)
            up_url = f"http://127.0.0.1:{up_port}/v1"
            proxy.wait_until_up(up_url + "/models", upstream)
            servers: dict[tuple[str, str], tuple[int, str]] = {}
            for name, tree in trees.items():
                for mode in modes:
                    run_yaml = Path(home) / f"{name}-{mode}.yaml"
                    run_yaml.write_text(templates[mode].format(url=up_url, sample_rate=""))
                    port = proxy.free_port()
                    env = {**os.environ, "POLYSTACK_HOME": str(Path(home) / f"home-{name}-{mode}"),
                           "PYTHONPATH": str(tree), "PYTHONHASHSEED": "0"}
                    server = subprocess.Popen(
                        ["valgrind", "--tool=callgrind",
                         *(["--cache-sim=yes"] if args.cache_sim else []),
                         f"--callgrind-out-file={out_dir}/callgrind.out.%p",
                         sys.executable, "-m", "stack", "run", str(run_yaml), "--host", "127.0.0.1",
                         "--port", str(port), "--log-level", "warning"],
                        env=env, cwd=tree, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                    procs.append(server)
                    url = f"http://127.0.0.1:{port}"
                    proxy.wait_until_up(url + "/v1/health", server, timeout=600)
                    servers[name, mode] = (server.pid, url + "/v1/chat/completions")
            results: dict[tuple[str, str], dict[str, int]] = {}
            for key, (pid, url) in servers.items():
                if asyncio.run(send(url, args.warmup)):
                    raise SystemExit(f"{key}: warm-up requests failed")
                time.sleep(1)  # the traced proxy's flush of the warm-up
                callgrind(pid, "-z")
                failures = asyncio.run(send(url, args.requests))
                callgrind(pid, "-d")
                if failures:
                    raise SystemExit(f"{key}: {failures} of {args.requests} requests failed")
                time.sleep(1)
                results[key] = totals(out_dir, pid)
                if args.keep:
                    args.keep.mkdir(parents=True, exist_ok=True)
                    shutil.copy(latest_dump(out_dir, pid), args.keep / f"callgrind.{key[0]}.{key[1]}")
                print(f"{key[0]} {key[1]}: " + ", ".join(f"{EVENTS.get(e, e)} {v / args.requests:,.0f}"
                                                          for e, v in results[key].items()), flush=True)
        finally:
            for proc in reversed(procs):
                proc.terminate()
            for proc in procs:
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    proc.kill()
    events = [e for e in EVENTS if all(e in r for r in results.values())]
    print(f"\nper request ({args.requests} requests, 16 at a time, live `polystack run` under callgrind)")
    print("| code | mode | " + " | ".join(EVENTS[e] for e in events) + " |")
    print("|---|---|" + "---|" * len(events))
    for (name, mode), counts in results.items():
        print(f"| {name} | {mode} | " + " | ".join(f"{counts[e] / args.requests:,.0f}" for e in events) + " |")
    for name in trees:
        if (name, "plain") in results and (name, "on") in results:
            plain, on = results[name, "plain"], results[name, "on"]
            print(f"{name}: tracing costs " + ", ".join(
                f"{EVENTS[e]} {(on[e] - plain[e]) / args.requests:+,.0f} ({(on[e] - plain[e]) / plain[e]:+.1%})"
                for e in events))


if __name__ == "__main__":
    main()
