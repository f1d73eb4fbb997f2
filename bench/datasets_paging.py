"""Paging a 1 M-row dataset with inline::localfs: RSS and milliseconds per page.

usage (from the repository root, so this checkout's code is imported):
    python -m bench.datasets_paging [--rows 1000000] [--page 100] [--formats jsonl,csv,parquet]

Writes the files to a temporary directory, registers each with the provider
in-process (SQLite store), then reads pages at random positions and, for a
baseline, the first page; then one filtered page (a full scan). Registration builds the sparse offset index (one
pass over the file); pages seek from the nearest indexed row. Prints one line
per format; docs/performance.md records the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import random
import tempfile
import time
from pathlib import Path

from providers.inline.datasetio.localfs import LocalFSDatasetIOConfig, create
from providers.utils.datasetio.paging import encode_token
from stack.apis.datasets import Dataset
from stack.fetcher import FetchConfig, URLFetcher
from stack.registry import ProviderContext, ProviderSpec

SCHEMA = {"id": {"type": "number"}, "question": {"type": "string"}, "answer": {"type": "string"}}


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def row(i: int) -> dict:
    return {"id": i, "question": f"What is {i} times three? Explain the steps.", "answer": str(3 * i)}


def write(fmt: str, path: Path, rows: int) -> None:
    if fmt == "jsonl":
        with path.open("w") as fh:
            for i in range(rows):
                fh.write(json.dumps(row(i)) + "\n")
    elif fmt == "csv":
        with path.open("w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(list(SCHEMA))
            for i in range(rows):
                writer.writerow(row(i).values())
    else:
        import pyarrow as pa
        import pyarrow.parquet as pq

        writer = None
        for start in range(0, rows, 100_000):
            table = pa.Table.from_pylist([row(i) for i in range(start, min(start + 100_000, rows))])
            writer = writer or pq.ParquetWriter(path, table.schema)
            writer.write_table(table, row_group_size=10_000)
        writer.close()


async def bench(fmt: str, directory: Path, rows: int, page: int, pages: int) -> None:
    path = directory / f"rows.{fmt}"
    write(fmt, path, rows)
    spec = ProviderSpec(api="datasetio", provider_type="inline::localfs", config=LocalFSDatasetIOConfig, factory=create)
    context = ProviderContext("localfs", spec, "bench", directory / f"home-{fmt}",
                              fetcher=URLFetcher(FetchConfig(allow_dirs=[str(directory)])))
    provider = await create(LocalFSDatasetIOConfig(), context)
    before = rss_mib()
    started = time.perf_counter()
    await provider.register_dataset(Dataset.model_validate({
        "identifier": fmt, "provider_resource_id": fmt, "provider_id": "localfs", "dataset_schema": SCHEMA,
        "url": {"uri": str(path)}, "metadata": {}}))
    register_s = time.perf_counter() - started
    positions = [random.randrange(rows - page) for _ in range(pages)]
    started = time.perf_counter()
    for position in positions:
        result = await provider.get_rows_paginated(fmt, page, page_token=encode_token(position))
        assert result.rows[0]["id"] == position and len(result.rows) == page
    random_ms = (time.perf_counter() - started) / pages * 1000
    started = time.perf_counter()
    for _ in range(pages):
        await provider.get_rows_paginated(fmt, page)
    first_ms = (time.perf_counter() - started) / pages * 1000
    started = time.perf_counter()
    result = await provider.get_rows_paginated(fmt, page, filter_condition=f"id == {rows - 1}")
    assert result.total_count == 1
    filter_s = time.perf_counter() - started
    size_mib = path.stat().st_size / 2**20
    print(f"{fmt:8} {rows:>9,} rows {size_mib:7.1f} MiB  register (index) {register_s:6.2f} s  "
          f"page of {page}: random {random_ms:6.2f} ms, first {first_ms:6.2f} ms  filtered (full scan) {filter_s:5.2f} s  "
          f"RSS {before:6.1f} -> {rss_mib():6.1f} MiB")
    await provider.shutdown()
    path.unlink()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--page", type=int, default=100)
    parser.add_argument("--pages", type=int, default=200, help="pages read per measurement")
    parser.add_argument("--formats", default="jsonl,csv,parquet")
    args = parser.parse_args()
    random.seed(1)
    with tempfile.TemporaryDirectory(prefix="polystack-bench-") as tmp:
        for fmt in args.formats.split(","):
            await bench(fmt, Path(tmp), args.rows, args.page, args.pages)


if __name__ == "__main__":
    asyncio.run(main())
