"""Tracing's cost in machine instructions per request, counted by valgrind's callgrind: a count
that other load on the machine does not change, unlike the CPU times of bench/proxy.py and
bench/tracing_inprocess.py (on two shared cores their identical runs differed by more than the
effect being measured).

The proxy's app (bench/proxy.py's traced run config: remote::openai to bench/_instant_upstream.py,
inline::meta-reference telemetry with the sqlite sink) is called in-process as in
bench/tracing_inprocess.py, 16 requests at a time; callgrind counts only the measured requests
and the flush after them (collection is switched on inside one ``functools.reduce`` call, which
nothing else here makes). Modes: ``plain`` (bench/proxy.py's run config without telemetry: what
its tracing-off proxy runs), ``off`` (the traced run config with the collector taken away: the
traced methods' wrappers stay), ``on`` (every request traced, spans
written by the span writer process, whose own instructions are not counted: see
bench/tracing_inprocess.py for its CPU time) and ``drop`` (spans made, then dropped: the
request path alone).

usage: python bench/tracing_instructions.py [--requests 800] [--modes plain,off,on,drop] [--base-tree DIR]

Each mode runs in its own valgrind process (~40 s each; two run at a time). Needs valgrind.
--base-tree DIR counts the same modes with the code of another checkout (a git worktree of the
code before a change).
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import functools
import gc
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent


def callgrind_total(tree: Path, command: list[str], *options: str, env: dict[str, str] | None = None) -> int:
    """The instructions callgrind counts running ``command`` (after ``python``) with ``tree``'s code;
    ``options``: valgrind's own (``--toggle-collect=...``)."""
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch) / "callgrind.out"
        proc = subprocess.run(
            ["valgrind", "--tool=callgrind", *options, f"--callgrind-out-file={out}", sys.executable, *command],
            # one hash seed for every run: dict and set probes (and so the count) otherwise differ by
            # thousands of instructions a request from one process to the next
            cwd=tree, env={**os.environ, **(env or {}), "PYTHONPATH": str(tree), "PYTHONHASHSEED": "0"},
            capture_output=True, text=True)
        if proc.returncode != 0:
            raise SystemExit(f"{' '.join(command)} in {tree} failed:\n{proc.stdout[-2000:]}{proc.stderr[-4000:]}")
        return int(re.search(r"^summary:\s+(\d+)", out.read_text(), re.M).group(1))


def count(tree: Path, mode: str, requests: int, upstream_url: str) -> int:
    """Instructions per request of ``mode`` with the code of ``tree``."""
    command = [str(HERE / "tracing_instructions.py"), "--_worker", mode, str(requests), upstream_url, str(tree)]
    return callgrind_total(tree, command, "--toggle-collect=functools_reduce") // requests


def worker(mode: str, requests: int, upstream_url: str, tree: Path) -> None:
    """Runs under callgrind: build the app, warm up, then the measured requests inside ``reduce``."""
    sys.path[:0] = [str(tree / "bench"), str(tree)]
    import proxy
    from tracing_inprocess import build_app, call

    from stack import _spancore, tracing
    from stack.cli import GC_YOUNG_THRESHOLD

    home = Path(tempfile.mkdtemp())
    os.environ["POLYSTACK_HOME"] = str(home / "home")
    run_yaml = proxy.RUN_YAML if mode == "plain" else proxy.TRACED_RUN_YAML
    app = build_app(run_yaml.format(url=upstream_url, sample_rate=""), home)
    body = proxy.BODY.encode()
    loop = asyncio.new_event_loop()
    lifespan = app.router.lifespan_context(app)
    loop.run_until_complete(lifespan.__aenter__())
    collector = tracing.collector()
    writer = next((sink.writer for sink in collector.sinks if getattr(sink, "writer", None)), None) if collector else None
    if writer is not None and not loop.run_until_complete(writer.wait_ready()):
        raise SystemExit("the span writer process did not start")
    if mode == "drop":
        collector._spans = _spancore.SpanBuffer(0)  # every span vanishes as it is added
    tracing.install(None if mode in ("off", "plain") else collector)

    async def serve(n: int) -> None:
        for _ in range(n // 16):
            await asyncio.gather(*(call(app, body) for _ in range(16)))
        if collector is not None:
            await collector.flush()

    loop.run_until_complete(serve(480))  # warm-up: connections, caches, specialised bytecode
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])  # as `polystack run` serves
    functools.reduce(lambda _a, _b: loop.run_until_complete(serve(requests)), [0, 0])  # counted
    tracing.install(collector)
    loop.run_until_complete(lifespan.__aexit__(None, None, None))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=800)
    parser.add_argument("--modes", default="plain,off,on,drop")
    parser.add_argument("--base-tree", type=Path)
    parser.add_argument("--_worker", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args._worker:
        mode, requests, url, tree = args._worker
        worker(mode, int(requests), url, Path(tree))
        return
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed (apt-get install valgrind)")
    sys.path.insert(0, str(HERE))
    import proxy

    port = proxy.free_port()
    upstream = subprocess.Popen([sys.executable, str(HERE / "_instant_upstream.py"), str(port)])
    try:
        url = f"http://127.0.0.1:{port}/v1"
        proxy.wait_until_up(url + "/models", upstream)
        trees = {"after": HERE.parent}
        if args.base_tree:
            trees["before"] = args.base_tree.resolve()
        modes = args.modes.split(",")
        jobs = [(name, tree, mode) for name, tree in trees.items() for mode in modes]
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            counts = dict(zip([(n, m) for n, _, m in jobs],
                              pool.map(lambda job: count(job[1], job[2], args.requests, url), jobs)))
    finally:
        upstream.terminate()
        upstream.wait(10)
    print(f"instructions per request ({args.requests} requests, 16 at a time; callgrind)")
    against = next((m for m in ("plain", "off") if m in modes), "off")
    print("| code | " + " | ".join(modes) + f" | tracing costs (on - {against}) |")
    print("|---|" + "---|" * (len(modes) + 1))
    for name in trees:
        row = [f"{counts[name, m]:,}" for m in modes]
        cost = ""
        untraced = next((m for m in ("plain", "off") if m in modes), None)
        if "on" in modes and untraced is not None:
            off, on = counts[name, untraced], counts[name, "on"]
            cost = f"{on - off:+,} ({(on - off) / off:+.1%})"
        print(f"| {name} | " + " | ".join(row) + f" | {cost} |")


if __name__ == "__main__":
    main()
