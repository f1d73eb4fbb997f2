"""The span store's write cost per request as the store grows: random span ids against span ids that
start with the time (``tracing.new_span_id``), whose root span index then grows in one place.

Each request is a proxied chat completion's four spans (the request, router, provider and upstream
call, with the attributes the proxy records), one ``span_chunks`` row, written through the span
store (``SpanStoreSink``'s tables and indexes on SQLite: WAL, synchronous=FULL) in groups of
``--group`` requests, one transaction each, as the span writer process writes them. The CPU time
(this process and the store's thread: ``time.process_time``) of the groups that take the store
from ``--rows`` minus ``--measure`` requests to ``--rows`` is divided by ``--measure``; trace ids
come from ``tracing.new_trace_id`` in both modes.

usage: python bench/span_store_inserts.py [--rows 300000] [--measure 50000] [--group 500]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from providers.inline.telemetry.meta_reference.chunk_table import CHUNK_KEY, chunk_rows  # noqa: E402
from providers.inline.telemetry.meta_reference.sinks import SpanStoreSink  # noqa: E402
from stack import tracing  # noqa: E402
from stack.storage import SqliteStoreConfig, sqlstore_from_config  # noqa: E402


def random_span_id() -> str:
    return os.urandom(8).hex()


def request_spans(new_span_id) -> list[tuple]:
    """A proxied chat completion's four spans, as the collector hands them over."""
    trace_id, now = tracing.new_trace_id(), time.time_ns()
    root, router, provider, upstream = (new_span_id() for _ in range(4))
    return [
        (trace_id, upstream, provider, "upstream POST", now + 400_000, now + 3_900_000, "ok", False,
         {"http.request.method": "POST", "url.full": "http://127.0.0.1:8000/v1/chat/completions",
          "polystack.upstream": "remote::openai (upstream)", "http.response.status_code": 200}, (), None),
        (trace_id, provider, router, "provider inference.openai_chat_completion", now + 300_000, now + 4_000_000,
         "ok", False, {"polystack.api": "inference", "polystack.provider_type": "remote::openai",
                       "polystack.provider_id": "upstream", "gen_ai.operation.name": "chat",
                       "gen_ai.request.model": "bench-upstream", "gen_ai.response.model": "bench-upstream",
                       "gen_ai.usage.input_tokens": 12, "gen_ai.usage.output_tokens": 10}, (), None),
        (trace_id, router, root, "router inference.openai_chat_completion", now + 200_000, now + 4_100_000, "ok",
         False, {"polystack.api": "inference", "gen_ai.operation.name": "chat", "gen_ai.request.model": "bench"},
         (), None),
        (trace_id, root, None, "POST /v1/chat/completions", now, now + 4_200_000, "ok", True,
         {"http.request.method": "POST", "url.path": "/v1/chat/completions", "http.response.status_code": 200,
          "http.route": "/v1/chat/completions"}, (), None),
    ]


async def run(label: str, new_span_id, rows: int, measure: int, group: int) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        store = await sqlstore_from_config(SqliteStoreConfig(db_path=str(Path(scratch) / "spans.db")))
        sink = SpanStoreSink(store)
        await sink.initialize()
        written, cpu = 0, 0.0
        while written < rows:
            spans = [span for _ in range(group) for span in request_spans(new_span_id)]
            batch = chunk_rows(spans, None)
            started = time.process_time()
            await store.upsert_many("span_chunks", batch, CHUNK_KEY)
            if written >= rows - measure:
                cpu += time.process_time() - started
            written += group
            print(f"\r{label}: {written:,} / {rows:,} requests", end="", file=sys.stderr, flush=True)
        print(file=sys.stderr)
        size = sum(f.stat().st_size for f in Path(scratch).iterdir())
        await sink.close()
    print(f"| {label} | {cpu / measure * 1e6:.1f} µs | {size / 2**20:,.0f} MiB |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=300_000)
    parser.add_argument("--measure", type=int, default=50_000)
    parser.add_argument("--group", type=int, default=500)
    args = parser.parse_args()
    if not 0 < args.measure <= args.rows:
        raise SystemExit("--measure must be between 1 and --rows")
    print(f"| span ids | store CPU a request, the last {args.measure:,} of {args.rows:,} | files |")
    print("|---|---|---|")
    for label, make in (("random", random_span_id), ("time first (new_span_id)", tracing.new_span_id)):
        asyncio.run(run(label, make, args.rows, args.measure, args.group))


if __name__ == "__main__":
    main()
