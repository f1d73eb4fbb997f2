"""Eval throughput: rows/s of a meta-reference eval job whose candidate is a fast upstream.

usage: python bench/eval_rows.py [--rows N] [--concurrency 1,16]

Starts the instant OpenAI-compatible upstream (bench/_instant_upstream.py) and,
per concurrency, a `polystack run` with remote::openai pointed at it,
inline::localfs reading an N-row JSONL file, inline::basic scoring and
meta-reference eval with that `max_concurrency`; then runs one eval job over
all rows and reports the job's wall time from submit to completed, as
GET /v1/jobs/{id} sees it. The upstream does no work, so this measures the
eval path: paging, generation through the router, scoring, the job store.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from proxy import free_port, wait_until_up  # noqa: E402

HERE = Path(__file__).resolve().parent
RUN_YAML = """\
version: '2'
image_name: bench-eval
apis: [eval, datasetio, scoring, inference]
providers:
  eval:
  - {{provider_id: meta-reference, provider_type: inline::meta-reference, config: {{max_concurrency: {c}}}}}
  datasetio:
  - {{provider_id: localfs, provider_type: inline::localfs, config: {{}}}}
  scoring:
  - {{provider_id: basic, provider_type: inline::basic, config: {{}}}}
  inference:
  - {{provider_id: upstream, provider_type: remote::openai, config: {{url: {url}, api_key: bench}}}}
models:
- {{model_id: bench, provider_id: upstream, provider_model_id: bench-upstream, model_type: llm}}
server:
  fetch: {{allow_dirs: [{data}]}}
"""


def call(url: str, method: str = "GET", body: dict | None = None) -> dict:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=600) as response:
        text = response.read()
    return json.loads(text) if text else {}


def one_run(rows: int, concurrency: int, up_url: str, work: Path) -> dict:
    home = work / f"home-{concurrency}"
    run_yaml = work / f"run-{concurrency}.yaml"
    run_yaml.write_text(RUN_YAML.format(c=concurrency, url=up_url, data=work))
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "stack", "run", str(run_yaml), "--host", "127.0.0.1",
                             "--port", str(port), "--log-level", "warning"], env={**os.environ, "POLYSTACK_HOME": str(home)})
    try:
        base = f"http://127.0.0.1:{port}"
        wait_until_up(base + "/v1/health", proc)
        call(base + "/v1/datasets", "POST", {"dataset_id": "rows", "url": {"uri": f"file://{work}/rows.jsonl"},
                                            "dataset_schema": {"input_query": {"type": "string"},
                                                               "expected_answer": {"type": "string"}}})
        call(base + "/v1/eval-tasks", "POST", {"eval_task_id": "t", "dataset_id": "rows",
                                              "scoring_functions": ["basic::subset_of"]})
        config = {"type": "benchmark", "eval_candidate": {"type": "model", "model": "bench",
                                                          "sampling_params": {"max_tokens": 16}}}
        started = time.perf_counter()
        job_id = call(base + "/v1/eval/tasks/t/jobs", "POST", {"task_config": config})["job_id"]
        while (job := call(f"{base}/v1/jobs/{job_id}"))["status"] in ("scheduled", "in_progress"):
            time.sleep(0.02)
        elapsed = time.perf_counter() - started
        if job["status"] != "completed":
            raise SystemExit(f"job {job_id} {job['status']}: {job.get('error')}")
        return {"seconds": elapsed, "rows_per_s": rows / elapsed,
                "generated": len(job["result"]["generations"])}
    finally:
        proc.terminate()
        proc.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--concurrency", default="1,16")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        with open(work / "rows.jsonl", "w") as fh:
            for i in range(args.rows):
                fh.write(json.dumps({"input_query": f"Say something about fox number {i}.",
                                     "expected_answer": "fox"}) + "\n")
        up_port = free_port()
        upstream = subprocess.Popen([sys.executable, str(HERE / "_instant_upstream.py"), str(up_port)])
        try:
            up_url = f"http://127.0.0.1:{up_port}/v1"
            wait_until_up(up_url + "/models", upstream)
            print(f"{args.rows} rows; {os.cpu_count()} cores shared by all processes")
            print("| max_concurrency | job seconds | rows/s |")
            print("|---|---|---|")
            for c in [int(x) for x in args.concurrency.split(",")]:
                r = one_run(args.rows, c, up_url, work)
                assert r["generated"] == args.rows
                print(f"| {c} | {r['seconds']:.2f} | {r['rows_per_s']:,.0f} |", flush=True)
        finally:
            upstream.terminate()
            upstream.wait(10)


if __name__ == "__main__":
    main()
