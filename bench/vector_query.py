"""Vector query latency and recall over HTTP, against a real ``polystack run``.

    python bench/vector_query.py [--providers faiss-hnsw,faiss-flat,pgvector,pgvector-index-after-load,qdrant-local]
                                 [--n 100000] [--queries 500] [--real-embeddings 2000]

Method (embedding excluded, everything else included):
- Data: ``--n`` unit vectors of 384 dims drawn around 2,000 random centres
  with ``--spread`` noise (a clustered set, as text embeddings are; the
  larger the spread, the less clustered and the harder for HNSW). Queries
  are drawn from the same distribution. Written as .npy files.
- Embeddings come from ``inline::bench-precomputed``, a bench-only test double
  (bench/_precomputed_embeddings, pip-installed into a temporary folder and
  loaded as a plugin): it embeds the text ``"base:17"`` as row 17 of
  base.npy. So an insert or query still goes HTTP -> vector_io router ->
  provider -> inference router -> "embedding" -> index, but the model costs
  nothing. Chunks are inserted over HTTP, 1,000 per request.
- Latency: ``--queries`` sequential ``POST /v1/vector-io/query`` (k=10,
  score_threshold=-1) on one keep-alive connection after 50 warm-up queries;
  p50/p99 of the client-side wall time.
- Recall@10: the returned document ids against exact top-10 by cosine (numpy).
- pgvector runs on a PostgreSQL of the ``pgserver`` package (its default
  settings), a database of its own per provider. ``pgvector`` is the default
  config: the HNSW index is built once 10k rows are in, later rows join it one
  by one. ``pgvector-index-after-load`` sets ``hnsw_index_min_rows`` to
  ``--n``: the last insert builds the index over everything (bulk load).
- ``--real-embeddings N``: with all-MiniLM-L6-v2 on sentence-transformers,
  the time to embed N texts through /v1/inference/embeddings (64 per call)
  against inserting the same N texts as chunks into FAISS (which embeds them).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.support import ServerProcess  # noqa: E402

DIM, K = 384, 10
PLUGIN = REPO / "bench" / "_precomputed_embeddings"

VECTOR_IO = {
    "faiss-hnsw": "provider_type: inline::faiss\n    config: {}",
    "faiss-flat": "provider_type: inline::faiss\n    config: {index_type: flat}",
    "qdrant-local": "provider_type: inline::qdrant\n    config: {}",
    "pgvector": "provider_type: remote::pgvector\n    config: PG",
    "pgvector-index-after-load": "provider_type: remote::pgvector\n    config: PG",
}

RUN_CONFIG = """\
version: '2'
image_name: vector-bench
apis: [inference, vector_io]
providers:
  inference:
  - provider_id: {inference_id}
    provider_type: {inference_type}
    config: {{}}
  vector_io:
  - provider_id: vectors
    {vector_io}
models:
- model_id: {model}
  provider_id: {inference_id}
  model_type: embedding
  metadata: {{embedding_dimension: 384}}
"""


def make_data(n: int, queries: int, spread: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((2000, DIM)).astype(np.float32)
    base = centres[rng.integers(0, len(centres), n)] + spread * rng.standard_normal((n, DIM)).astype(np.float32)
    query = centres[rng.integers(0, len(centres), queries)] + spread * rng.standard_normal((queries, DIM)).astype(np.float32)
    base /= np.linalg.norm(base, axis=1, keepdims=True)
    query /= np.linalg.norm(query, axis=1, keepdims=True)
    return base, query


def exact_top_k(base: np.ndarray, query: np.ndarray) -> np.ndarray:
    scores = query @ base.T
    top = np.argpartition(-scores, K, axis=1)[:, :K]
    return np.take_along_axis(top, np.argsort(-np.take_along_axis(scores, top, axis=1), axis=1), axis=1)


def install_plugin(target: Path) -> None:
    source = target.parent / "plugin-src"  # a copy: building writes build/ and egg-info next to the sources
    shutil.copytree(PLUGIN, source)
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                    "--target", str(target), str(source)], check=True)


def pg_config(work: Path, database: str, **extra) -> str:
    """remote::pgvector's config for a new database on the bench's PostgreSQL
    (started on first use, as a child of this process: ``nice`` applies to it too)."""
    import psycopg
    import pgserver
    from psycopg.conninfo import conninfo_to_dict

    server = pgserver.get_server(str(work / "pg"), cleanup_mode="stop")
    with psycopg.connect(server.get_uri(), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{database}"')
    params = conninfo_to_dict(server.get_uri())
    return json.dumps({"host": params["host"], "port": 5432, "db": database, "user": params["user"], **extra})


def bench_provider(name: str, work: Path, plugin_dir: Path, base: np.ndarray, query: np.ndarray, truth: np.ndarray,
                   n_queries: int) -> dict:
    home = work / f"home-{name}"
    config = work / f"run-{name}.yaml"
    vector_io = VECTOR_IO[name]
    if name.startswith("pgvector"):
        extra = {"hnsw_index_min_rows": len(base)} if name == "pgvector-index-after-load" else {}
        vector_io = vector_io.replace("PG", pg_config(work, name.replace("-", "_"), **extra))
    config.write_text(RUN_CONFIG.format(inference_id="precomputed", inference_type="inline::bench-precomputed",
                                        vector_io=vector_io, model="precomputed"))
    env = {"BENCH_VECTORS_DIR": str(work), "POLYSTACK_PLUGINS": "bench_precomputed"}
    with ServerProcess(str(config), home=home, env=env, pythonpath=[plugin_dir]) as server, \
            httpx.Client(base_url=server.base_url, timeout=600) as client:
        r = client.post("/v1/vector-dbs", json={"vector_db_id": "bench", "embedding_model": "precomputed",
                                                "embedding_dimension": DIM})
        r.raise_for_status()
        started = time.perf_counter()
        for start in range(0, len(base), 1000):
            chunks = [{"content": f"base:{i}", "metadata": {"document_id": str(i)}}
                      for i in range(start, min(start + 1000, len(base)))]
            client.post("/v1/vector-io/insert", json={"vector_db_id": "bench", "chunks": chunks}).raise_for_status()
        insert_s = time.perf_counter() - started

        def ask(i: int) -> list[int]:
            r = client.post("/v1/vector-io/query", json={"vector_db_id": "bench", "query": f"query:{i}",
                                                          "params": {"max_chunks": K, "score_threshold": -1}})
            r.raise_for_status()
            return [int(c["metadata"]["document_id"]) for c in r.json()["chunks"]]

        for i in range(50):
            ask(i % len(query))
        latencies, hits = [], 0
        for i in range(n_queries):
            t0 = time.perf_counter()
            got = ask(i % len(query))
            latencies.append((time.perf_counter() - t0) * 1000)
            hits += len(set(got) & set(truth[i % len(query)].tolist()))
    latencies.sort()
    return {
        "provider": name,
        "chunks": len(base),
        "insert_s": round(insert_s, 1),
        "insert_chunks_per_s": round(len(base) / insert_s),
        "p50_ms": round(statistics.median(latencies), 2),
        "p99_ms": round(latencies[int(0.99 * (len(latencies) - 1))], 2),
        "recall@10": round(hits / (K * n_queries), 4),
    }


def bench_real_embeddings(n: int, work: Path) -> dict:
    """Raw embedding throughput against FAISS insert throughput, real model."""
    config = work / "run-real.yaml"
    config.write_text(RUN_CONFIG.format(inference_id="st", inference_type="inline::sentence-transformers",
                                        vector_io=VECTOR_IO["faiss-hnsw"], model="all-MiniLM-L6-v2"))
    rng = np.random.default_rng(1)
    words = "the a neural network brain model data query vector index search fast slow result token learn".split()
    texts = [" ".join(rng.choice(words, 40)) + f" {i}" for i in range(n)]
    with ServerProcess(str(config), home=work / "home-real", env={"POLYSTACK_PLUGINS": ""}) as server, \
            httpx.Client(base_url=server.base_url, timeout=600) as client:
        client.post("/v1/inference/embeddings", json={"model_id": "all-MiniLM-L6-v2", "contents": ["warm"]}).raise_for_status()
        started = time.perf_counter()
        for i in range(0, n, 64):
            client.post("/v1/inference/embeddings",
                        json={"model_id": "all-MiniLM-L6-v2", "contents": texts[i:i + 64]}).raise_for_status()
        embed_s = time.perf_counter() - started
        client.post("/v1/vector-dbs", json={"vector_db_id": "real", "embedding_model": "all-MiniLM-L6-v2"}).raise_for_status()
        started = time.perf_counter()
        for i in range(0, n, 500):
            chunks = [{"content": t, "metadata": {"document_id": str(i + j)}} for j, t in enumerate(texts[i:i + 500])]
            client.post("/v1/vector-io/insert", json={"vector_db_id": "real", "chunks": chunks}).raise_for_status()
        insert_s = time.perf_counter() - started
    return {"texts": n, "embed_texts_per_s": round(n / embed_s), "faiss_insert_chunks_per_s": round(n / insert_s)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--providers", default="faiss-hnsw,faiss-flat")
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("--real-embeddings", type=int, default=0, metavar="N")
    parser.add_argument("--spread", type=float, default=1.0,
                        help="noise around each centre, per dimension (centres are N(0,1)): 0.6 gives tight clusters, "
                        "2 nearly none")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="vector-bench-") as tmp:
        work = Path(tmp)
        base, query = make_data(args.n, min(args.queries, 1000), args.spread)
        np.save(work / "base.npy", base)
        np.save(work / "query.npy", query)
        truth = exact_top_k(base, query)
        plugin_dir = work / "plugin"
        install_plugin(plugin_dir)
        try:
            for name in filter(None, args.providers.split(",")):
                print(json.dumps(bench_provider(name, work, plugin_dir, base, query, truth, args.queries)), flush=True)
            if args.real_embeddings:
                print(json.dumps(bench_real_embeddings(args.real_embeddings, work)), flush=True)
        finally:
            if (work / "pg").exists():  # stop PostgreSQL while its folder is still there
                import pgserver

                pgserver.get_server(str(work / "pg")).cleanup()


if __name__ == "__main__":
    main()
