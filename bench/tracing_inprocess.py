"""The CPU a traced request costs, measured in one process: the proxy's app is called directly
(no HTTP server, no load generator), tracing is switched off and on between interleaved rounds,
and the main thread's CPU time per request is compared. Steadier than bench/proxy.py on a
shared machine, since nothing else runs in the measured thread.

usage: python bench/tracing_inprocess.py [--requests 8000] [--concurrency 16] [--rounds 3]
                                         [--no-gc] [--drop-spans | --no-sinks]

The app is bench/proxy.py's traced run config (remote::openai to bench/_instant_upstream.py,
inline::meta-reference telemetry with the sqlite sink). --no-gc switches the garbage
collector off (what GC costs); --drop-spans drops every span as it ends (the request path
alone); --no-sinks buffers them but writes nowhere (the request path and the buffer).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import proxy  # bench/proxy.py: run configs, the upstream, ports

SCOPE = {
    "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
    "path": "/v1/chat/completions", "raw_path": b"/v1/chat/completions", "query_string": b"", "root_path": "",
    "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 2),
}


async def call(app, body: bytes) -> None:
    """One POST /v1/chat/completions straight into the ASGI app."""
    received = False

    async def receive():
        nonlocal received
        if not received:
            received = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.Event().wait()  # the client never goes away

    statuses = []

    async def send(message):
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    headers = [(b"host", b"bench"), (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await app({**SCOPE, "headers": headers}, receive, send)
    if statuses != [200]:
        raise SystemExit(f"the proxy answered {statuses}")


def build_app(run_yaml: str, home: Path):
    from stack.config import load_run_config
    from stack.plugins import collect_providers, get_plugin_manager
    from stack.resolver import plan
    from stack.server import create_app

    path = home / "run.yaml"
    path.write_text(run_yaml)
    return create_app(plan(load_run_config(path), collect_providers(get_plugin_manager(load_entry_points=False))))


async def measure(args: argparse.Namespace, upstream_url: str, home: Path) -> dict[str, list[float]]:
    from stack import _spancore, tracing
    from stack.cli import GC_YOUNG_THRESHOLD

    run_yaml = proxy.TRACED_RUN_YAML.format(url=upstream_url, sample_rate="")
    app = build_app(run_yaml.replace("sinks: [sqlite]", f"sinks: [sqlite], span_writer: {args.span_writer}"), home)
    body = proxy.BODY.encode()
    async with app.router.lifespan_context(app):
        collector = tracing.collector()
        if args.drop_spans:
            collector._spans = _spancore.SpanBuffer(0)  # every span vanishes as it is added
        writer = next((sink.writer for sink in collector.sinks if getattr(sink, "writer", None)), None)
        if writer is not None and not await writer.wait_ready():
            raise SystemExit("the span writer process did not start")
        if args.no_sinks:
            collector.sinks = []
        for _ in range(300):  # warm-up: connections, caches
            await call(app, body)
        gc.collect()
        gc.freeze()
        gc.set_threshold(GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])  # as `polystack run` serves
        if args.no_gc:
            gc.disable()
        per_request: dict[str, list[float]] = {f"{mode}{what}": [] for mode in ("off", "on")
                                               for what in ("", "-all", "-child", "-total")}
        for round_ in range(args.rounds):
            for mode in ("off", "on") if round_ % 2 == 0 else ("on", "off"):
                tracing.install(collector if mode == "on" else None)
                await collector.flush()
                started, started_all, started_child = time.thread_time(), time.process_time(), child_cpu(writer)
                for _ in range(args.requests // args.concurrency):
                    await asyncio.gather(*(call(app, body) for _ in range(args.concurrency)))
                await collector.flush()  # the writing is part of the cost
                per_request[mode].append((time.thread_time() - started) / args.requests * 1e6)
                # all threads: the SQLite writer's work too
                per_request[mode + "-all"].append((time.process_time() - started_all) / args.requests * 1e6)
                during = (child_cpu(writer) - started_child) / args.requests * 1e6
                if writer is not None and hasattr(writer, "sync"):  # a backlog written at idle priority
                    await writer.sync()  # its catch-up counts too: deferred is not saved
                per_request[mode + "-child"].append((child_cpu(writer) - started_child) / args.requests * 1e6)
                per_request[mode + "-total"].append(per_request[mode + "-all"][-1] + per_request[mode + "-child"][-1])
                print(f"round {round_ + 1} tracing {mode:3}: {per_request[mode][-1]:6.1f} µs of main-thread CPU "
                      f"per request, {per_request[mode + '-all'][-1]:6.1f} µs in all threads, "
                      f"{per_request[mode + '-child'][-1]:5.1f} µs in the span writer process "
                      f"({during:.1f} of them before the round's last flush returned)", flush=True)
        tracing.install(collector)  # shut down as started
        gc.enable()
    return per_request


def child_cpu(writer) -> float:
    """CPU seconds (user and system) the span writer process used so far; 0 without one."""
    if writer is None or writer.pid is None:
        return 0.0
    with open(f"/proc/{writer.pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=8000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-gc", action="store_true")
    what = parser.add_mutually_exclusive_group()
    what.add_argument("--drop-spans", action="store_true", help="drop every span as it ends (the request path alone)")
    what.add_argument("--no-sinks", action="store_true", help="buffer spans but write them nowhere")
    parser.add_argument("--span-writer", choices=("process", "thread"), default="process",
                        help="who writes the span store (the telemetry config's span_writer)")
    args = parser.parse_args()
    port = proxy.free_port()
    upstream = subprocess.Popen([sys.executable, str(HERE / "_instant_upstream.py"), str(port)])
    try:
        url = f"http://127.0.0.1:{port}/v1"
        proxy.wait_until_up(url + "/models", upstream)
        with tempfile.TemporaryDirectory() as home:
            os.environ["POLYSTACK_HOME"] = str(Path(home) / "home")
            per_request = asyncio.run(measure(args, url, Path(home)))
    finally:
        upstream.terminate()
        upstream.wait(10)
    # other load only ever adds CPU time (a busy machine's caches, its hypervisor): the fastest
    # round of each mode is the steadier comparison when the medians swing
    for label, pick in (("median", statistics.median), ("min", min)):
        off, on = pick(per_request["off"]), pick(per_request["on"])
        print(f"{label}: off {off:.1f} µs, on {on:.1f} µs: tracing costs {on - off:+.1f} µs ({(on - off) / off:+.0%}) "
              f"of main-thread CPU per request (concurrency {args.concurrency})")
        off, on = pick(per_request["off-all"]), pick(per_request["on-all"])
        print(f"{label}, all threads: off {off:.1f} µs, on {on:.1f} µs: tracing costs {on - off:+.1f} µs "
              f"({(on - off) / off:+.0%})")
        print(f"{label}, span writer process: {pick(per_request['on-child']):.1f} µs per request traced")
        off, on = pick(per_request["off-total"]), pick(per_request["on-total"])
        print(f"{label}, all processes: off {off:.1f} µs, on {on:.1f} µs: tracing costs {on - off:+.1f} µs "
              f"({(on - off) / off:+.0%})")


if __name__ == "__main__":
    main()
