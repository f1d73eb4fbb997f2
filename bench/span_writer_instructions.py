"""The span writer process's work a request, in machine instructions (callgrind): the rows of a
proxied chat request's four spans made from their chunk (``span_writer_child.group_rows``) and
upserted into a SQLite span store (``write_rows``), as the child does with each group. The
spans are the ones ``bench/proxy.py``'s traced proxy makes (the same names and attributes).

Counted: the main thread, between 2,048 and 6,144 requests (start-up and the store's first
pages cancel out). Not counted: SQLite's own work on the store's writer thread and the kernel's
(files, fsync): see docs/performance.md for their share.

usage: python bench/span_writer_instructions.py [--base-tree DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import functools
import gc
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
GROUP = 1024  # requests a group of batches holds (a flush of 4,096 spans)


def request_spans(n: int) -> list[tuple]:
    """The four spans of the ``n``-th proxied request, as the collector's buffer holds them."""
    from stack import tracing

    trace, root, router, provider, upstream = (tracing.new_trace_id(), *(tracing.new_span_id() for _ in range(4)))
    now = time.time_ns() + n
    model = {"gen_ai.operation.name": "chat", "gen_ai.request.model": "bench"}
    return [
        (trace, upstream, provider, "upstream POST", now + 10, now + 20, "ok", False,
         {"http.request.method": "POST", "url.full": "http://127.0.0.1:8000/v1/chat/completions",
          "polystack.upstream": "upstream", "http.response.status_code": 200}, None, None),
        (trace, provider, router, "provider inference.openai_chat_completion", now + 5, now + 25, "ok", False,
         {"polystack.api": "inference", "polystack.provider_type": "remote::openai",
          "polystack.provider_id": "upstream", **model, "gen_ai.response.model": "bench-upstream",
          "gen_ai.usage.input_tokens": 5, "gen_ai.usage.output_tokens": 7}, ("gen_ai",), None),
        (trace, router, root, "router inference.openai_chat_completion", now + 3, now + 27, "ok", False,
         {"polystack.api": "inference", **model}, None, None),
        (trace, root, None, "POST /v1/chat/completions", now, now + 30, "ok", True,
         {"http.request.method": "POST", "url.path": "/v1/chat/completions", "http.response.status_code": 200,
          "http.route": "/v1/chat/completions"}, None, None),
    ]


def worker(requests: int, tree: Path) -> None:
    """Runs under callgrind: a store, a warm-up group, then ``requests`` requests' groups inside ``reduce``."""
    sys.path[:0] = [str(tree)]
    from pydantic import TypeAdapter

    from providers.inline.telemetry.meta_reference import sinks
    from providers.inline.telemetry.meta_reference.span_writer_child import group_rows, write_rows
    from stack import _spancore
    from stack.storage import StoreConfig, sqlstore_from_config

    def groups(count: int) -> list[list[tuple[None, int, bytes]]]:
        made = []
        for g in range(count):
            spans = [span for n in range(GROUP) for span in request_spans(g * GROUP + n)]
            made.append([(None, time.time_ns(), _spancore.encode(spans[i:i + 512])) for i in range(0, len(spans), 512)])
        return made

    async def open_store():
        config = {"type": "sqlite", "db_path": str(Path(tempfile.mkdtemp()) / "spans.db")}
        store = await sqlstore_from_config(TypeAdapter(StoreConfig).validate_python(config))
        await sinks.SpanStoreSink(store).initialize()
        return store

    async def write(store, batches) -> None:
        for group in batches:
            await write_rows(store, group_rows(group), 0)

    loop = asyncio.new_event_loop()
    store = loop.run_until_complete(open_store())
    loop.run_until_complete(write(store, groups(2)))
    measured = groups(requests // GROUP)
    gc.collect()
    functools.reduce(lambda _a, _b: loop.run_until_complete(write(store, measured)), [0, 0])  # counted
    loop.run_until_complete(store.close())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base-tree", type=Path)
    parser.add_argument("--_worker", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args._worker:
        worker(int(args._worker[0]), Path(args._worker[1]))
        return
    sys.path.insert(0, str(HERE))
    from tracing_instructions import callgrind_total

    trees = {"after": HERE.parent}
    if args.base_tree:
        trees["before"] = args.base_tree.resolve()
    jobs = [(name, n) for name in trees for n in (2 * GROUP, 6 * GROUP)]

    def count(job):
        name, n = job
        command = [str(HERE / "span_writer_instructions.py"), "--_worker", str(n), str(trees[name])]
        return callgrind_total(trees[name], command, "--toggle-collect=functools_reduce")

    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        totals = dict(zip(jobs, pool.map(count, jobs)))
    print("the span writer's main thread, instructions a request (callgrind; (6,144 requests - 2,048) / 4,096)")
    print("| code | instructions a request |")
    print("|---|---|")
    for name in trees:
        print(f"| {name} | {(totals[name, 6 * GROUP] - totals[name, 2 * GROUP]) // (4 * GROUP):,} |")


if __name__ == "__main__":
    main()
