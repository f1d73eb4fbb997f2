"""Where pgvector insert time goes, in SQL alone (no HTTP, no provider).

    python bench/pgvector_insert_profile.py [--n 20000] [--memory 1GB]

On a fresh PostgreSQL of the ``pgserver`` package (its default settings), a
table as remote::pgvector makes them (``document_id``, ``chunk`` JSONB,
``embedding vector(384)``), rows of the bench's data (``--spread 2.0``) in
``COPY``s of 1,000 rows, one transaction each, and times:

1. ``COPY`` with no HNSW index, vectors as text literals;
2. the same with vectors in pgvector's binary format (``FORMAT BINARY``);
3. ``CREATE INDEX ... USING hnsw`` (m 32, ef_construction 64) over those rows,
   with ``maintenance_work_mem`` = ``--memory``;
4. binary ``COPY`` into a table that has the HNSW index from the start, so
   every row is added to the graph as it is inserted (the rate is printed
   every 5,000 rows).

Run it under ``nice``: PostgreSQL is started as a child of this process.
"""

from __future__ import annotations

import argparse
import json
import struct
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.vector_query import make_data  # noqa: E402

HNSW = "USING hnsw (embedding vector_cosine_ops) WITH (m = 32, ef_construction = 64)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--memory", default="1GB", help="maintenance_work_mem of the index build")
    args = parser.parse_args()

    import pgserver
    import psycopg

    n = args.n
    base, _ = make_data(n, 1, 2.0)
    chunks = [{"content": f"base:{i}", "metadata": {"document_id": str(i)}} for i in range(n)]
    with tempfile.TemporaryDirectory(prefix="pgvector-profile-") as tmp:
        server = pgserver.get_server(str(Path(tmp) / "pg"), cleanup_mode="stop")
        try:
            with psycopg.connect(server.get_uri(), autocommit=True) as conn:
                run(conn, n, base, chunks, args.memory)
        finally:
            server.cleanup()


def run(conn, n, base, chunks, memory) -> None:
    conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
    version = conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'").fetchone()[0]
    settings = {s: conn.execute(f"SHOW {s}").fetchone()[0]
                for s in ("shared_buffers", "maintenance_work_mem", "max_parallel_maintenance_workers")}
    print(json.dumps({"rows": n, "pgvector": version, **settings}), flush=True)

    def create(table: str, index: bool) -> None:
        conn.execute(f"CREATE TABLE {table} (id BIGSERIAL PRIMARY KEY, document_id TEXT, chunk JSONB NOT NULL, "
                     "embedding vector(384) NOT NULL)")
        conn.execute(f"CREATE INDEX ON {table} (document_id)")
        if index:
            conn.execute(f"CREATE INDEX {table}_hnsw ON {table} {HNSW}")

    def copy_text(table: str, lo: int, hi: int) -> None:
        with conn.transaction(), conn.cursor().copy(f"COPY {table} (document_id, chunk, embedding) FROM STDIN") as copy:
            for i in range(lo, hi):
                copy.write_row((str(i), json.dumps(chunks[i]), "[" + ",".join(map(repr, base[i].tolist())) + "]"))

    def copy_binary(table: str, lo: int, hi: int) -> None:
        with conn.transaction(), conn.cursor().copy(
                f"COPY {table} (document_id, chunk, embedding) FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types(["text", "jsonb", "bytea"])  # bytea: the vector's binary form as it is
            for i in range(lo, hi):
                copy.write_row((str(i), chunks[i], struct.pack(">HH", 384, 0) + base[i].astype(">f4").tobytes()))

    def load(table: str, copy, every: int = 0) -> float:
        started = last = time.perf_counter()
        for lo in range(0, n, 1000):
            copy(table, lo, min(lo + 1000, n))
            if every and (lo + 1000) % every == 0:
                now = time.perf_counter()
                print(json.dumps({"step": "indexed COPY progress", "rows": lo + 1000,
                                  "rows_per_s": round(every / (now - last))}), flush=True)
                last = now
        return time.perf_counter() - started

    def report(step: str, seconds: float, **extra) -> None:
        print(json.dumps({"step": step, "seconds": round(seconds, 1), "rows_per_s": round(n / seconds), **extra}),
              flush=True)

    def size(relation: str) -> str:
        return conn.execute("SELECT pg_size_pretty(pg_relation_size(%s))", (relation,)).fetchone()[0]

    create("plain_text", False)
    report("COPY text literals, no HNSW index", load("plain_text", copy_text), table=size("plain_text"))
    create("plain_binary", False)
    report("COPY binary, no HNSW index", load("plain_binary", copy_binary))
    same = conn.execute("SELECT count(*) FROM plain_text a JOIN plain_binary b USING (document_id) "
                        "WHERE a.embedding = b.embedding").fetchone()[0]
    assert same == n, f"binary and text COPY disagree on {n - same} vectors"

    notices = []
    conn.add_notice_handler(lambda d: notices.append(d.message_primary))
    conn.execute(f"SET maintenance_work_mem = '{memory}'")
    started = time.perf_counter()
    conn.execute(f"CREATE INDEX plain_binary_hnsw ON plain_binary {HNSW}")
    report(f"CREATE INDEX, maintenance_work_mem {memory}", time.perf_counter() - started,
           index=size("plain_binary_hnsw"), notices=notices)
    conn.execute("RESET maintenance_work_mem")

    create("indexed", True)
    report("COPY binary into a table with the HNSW index", load("indexed", copy_binary, every=5000),
           index=size("indexed_hnsw"))


if __name__ == "__main__":
    main()
