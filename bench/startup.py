"""Time from `polystack run` to a healthy /v1/health, and idle memory.

usage: python bench/startup.py [DISTRIBUTION_OR_PATH] [--runs N] [--first-use]

Starts the server N times on a free loopback port in a fresh POLYSTACK_HOME,
polls /v1/health every 10 ms, and reports the median and worst time to the
first 200, plus the server's resident memory (VmRSS) once it is idle, and that of
its child processes (the span store's writer).

--first-use rewrites the run config so that local models load on their
first request instead of in the background: the memory figure is then the
idle server before any model loads.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def children(pid: int) -> list[int]:
    """The running child processes of ``pid`` (the span writer)."""
    return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def one_run(target: str) -> tuple[float, float, float]:
    port = free_port()
    with tempfile.TemporaryDirectory() as home:
        env = {**os.environ, "POLYSTACK_HOME": home}
        start = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, "-m", "stack", "run", target, "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        try:
            while True:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/health", timeout=1) as r:
                        if r.status == 200:
                            break
                except OSError:
                    if proc.poll() is not None:
                        raise SystemExit(f"server exited with {proc.returncode}")
                    time.sleep(0.01)
            healthy = time.perf_counter() - start
            time.sleep(1.0)
            return healthy, rss_mib(proc.pid), sum(map(rss_mib, children(proc.pid)))
        finally:
            proc.terminate()
            proc.wait(10)


def first_use_config(target: str) -> str:
    """A copy of the run config whose local inference providers load lazily."""
    import yaml

    from stack.config import resolve_config_path

    data = yaml.safe_load(resolve_config_path(target).read_text())
    for entry in data.get("providers", {}).get("inference", []):
        if entry["provider_type"].startswith("inline::"):
            entry["config"] = {**(entry.get("config") or {}), "load": "first_use"}
    fd, path = tempfile.mkstemp(suffix=".yaml")
    with os.fdopen(fd, "w") as fh:
        yaml.safe_dump(data, fh)
    return path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("target", nargs="?", default="starter")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--first-use", action="store_true", help="local models load on first request")
    args = ap.parse_args()
    if args.first_use:
        args.target = first_use_config(args.target)
    results = [one_run(args.target) for _ in range(args.runs)]
    times = [t for t, _, _ in results]
    rss = [m for _, m, _ in results]
    child_rss = [c for _, _, c in results]
    print(f"{args.target}: healthy after median {statistics.median(times):.2f} s, worst {max(times):.2f} s "
          f"({args.runs} runs); idle RSS median {statistics.median(rss):.0f} MiB, its child processes "
          f"(the span writer) {statistics.median(child_rss):.0f} MiB more")


if __name__ == "__main__":
    main()
