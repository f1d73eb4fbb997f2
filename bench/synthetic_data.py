"""Synthetic data on the starter: seconds per candidate and how many SmolLM2 rates.

usage: python bench/synthetic_data.py [--dialogs N]

Starts `polystack run starter` (SmolLM2-135M on llama.cpp generates the
candidates and, through llm-as-judge::base, rates them: the starter's
defaults, 4 candidates a dialog of up to 256 tokens), waits for the models,
then sends one request of N one-question dialogs with filtering_function
"none" and reports its wall time (until its job completed, for a request of
more than 8 candidates), the seconds per candidate
(generation and judgement together) and the share of candidates the judge
gave a number.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from eval_rows import call  # noqa: E402
from proxy import free_port, wait_until_up  # noqa: E402

FINAL = ("completed", "failed", "cancelled", "interrupted")
QUESTIONS = ["Write one sentence about the sea.", "What is the capital of France?", "Name three fruits.",
             "How do I boil an egg?", "Give a synonym of happy.", "Why is the sky blue?"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dialogs", type=int, default=4)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as home:
        port = free_port()
        proc = subprocess.Popen([sys.executable, "-m", "stack", "run", "starter", "--port", str(port),
                                 "--log-level", "warning"], env={**os.environ, "POLYSTACK_HOME": home})
        try:
            base = f"http://127.0.0.1:{port}"
            wait_until_up(base + "/v1/health", proc)
            while not all(s == "ready" for models in call(base + "/v1/health").get("providers", {}).values()
                          for s in models.values()):
                time.sleep(0.2)
            dialogs = [{"role": "user", "content": QUESTIONS[i % len(QUESTIONS)]} for i in range(args.dialogs)]
            started = time.perf_counter()
            body = call(base + "/v1/synthetic-data-generation/generate", "POST",
                        {"dialogs": dialogs, "filtering_function": "none"})
            if not body["synthetic_data"] and "job_id" in body["statistics"]:  # a large request: its job has the data
                while (job := call(f"{base}/v1/jobs/{body['statistics']['job_id']}"))["status"] not in FINAL:
                    time.sleep(0.2)
                if job["status"] != "completed":
                    raise SystemExit(f"job {job['job_id']} {job['status']}: {job.get('error')}")
                body = job["result"]
            elapsed = time.perf_counter() - started
        finally:
            proc.terminate()
            proc.wait(30)
    stats = body["statistics"]
    print(f"{args.dialogs} dialogs; {os.cpu_count()} cores shared by all processes")
    print("| dialogs | candidates | request seconds | seconds per candidate | rated by the judge |")
    print("|---|---|---|---|---|")
    print(f"| {stats['dialogs']} | {stats['candidates']} | {elapsed:.1f} | {elapsed / stats['candidates']:.2f} "
          f"| {stats['scored']} of {stats['candidates']} |")


if __name__ == "__main__":
    main()
