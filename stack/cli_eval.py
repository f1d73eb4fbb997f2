"""``polystack eval run``: an eval task's job on a running server, with a progress bar and a results table."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any, TextIO

DEFAULT_URL = "http://127.0.0.1:8321"
FINAL = {"completed", "failed", "cancelled", "interrupted"}


def add_parser(sub: Any) -> None:
    evals = sub.add_parser("eval", help="run eval tasks on a running server")
    evals_sub = evals.add_subparsers(dest="eval_command", required=True)
    run = evals_sub.add_parser("run", help="run an eval task as a job and print its scores")
    run.add_argument("task", help="eval task id (see GET /v1/eval-tasks)")
    run.add_argument("--model", required=True, help="model to evaluate (a model id the server serves)")
    run.add_argument("--url", default=os.environ.get("POLYSTACK_URL", DEFAULT_URL),
                     help=f"server URL (default: $POLYSTACK_URL, else {DEFAULT_URL})")
    run.add_argument("--num-examples", type=int, help="rows to evaluate (default: all)")
    run.add_argument("--max-tokens", type=int, default=0, help="most tokens per answer (default: the model's)")
    run.add_argument("--system", help="system message sent before every row")
    run.add_argument("--api-key", default=os.environ.get("POLYSTACK_API_KEY"), help="API key (default: $POLYSTACK_API_KEY)")
    run.add_argument("--json", action="store_true", help="print the whole result as JSON instead of a table")
    run.set_defaults(func=cmd_eval_run)


def cmd_eval_run(args: argparse.Namespace) -> int:
    import httpx

    headers = {"Authorization": f"Bearer {args.api_key}"} if args.api_key else {}
    candidate: dict[str, Any] = {"type": "model", "model": args.model,
                                 "sampling_params": {"strategy": {"type": "greedy"}, "max_tokens": args.max_tokens}}
    if args.system:
        candidate["system_message"] = {"role": "system", "content": args.system}
    config: dict[str, Any] = {"type": "benchmark", "eval_candidate": candidate}
    if args.num_examples is not None:
        config["num_examples"] = args.num_examples
    base = f"/v1/eval/tasks/{args.task}/jobs"
    with httpx.Client(base_url=args.url, headers=headers, timeout=60) as client:
        try:
            started = client.post(base, json={"task_config": config})
        except httpx.HTTPError as exc:
            print(f"error: cannot reach {args.url}: {exc}", file=sys.stderr)
            return 1
        if started.status_code != 200:
            print(f"error: {_detail(started)}", file=sys.stderr)
            return 1
        job_id = started.json()["job_id"]
        print(f"job {job_id}: {args.task} on {args.model}", file=sys.stderr)
        try:
            job = _follow(client, job_id, sys.stderr)
        except KeyboardInterrupt:
            client.delete(f"{base}/{job_id}")
            print(f"\ncancelled job {job_id}", file=sys.stderr)
            return 130
        if job["status"] != "completed":
            print(f"error: job {job_id} {job['status']}: {job.get('error') or ''}".rstrip(": "), file=sys.stderr)
            return 1
        result = client.get(f"{base}/{job_id}/result").json()
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(results_table(result))
    return 0


def _detail(response: Any) -> str:
    try:
        return f"{response.status_code} {response.json()['detail']}"
    except (ValueError, KeyError, TypeError):
        return f"{response.status_code} {response.text[:200]}"


def _follow(client: Any, job_id: str, out: TextIO, poll: float = 0.5) -> dict[str, Any]:
    """Poll the job until it is final, drawing its progress on ``out``."""
    while True:
        job = client.get(f"/v1/jobs/{job_id}").json()
        out.write("\r" + progress_bar(job["progress"], job.get("message") or job["status"]))
        out.flush()
        if job["status"] in FINAL:
            out.write("\n")
            return job
        time.sleep(poll)


def progress_bar(progress: float, message: str, width: int = 30) -> str:
    filled = round(progress * width)
    return f"[{'#' * filled}{'.' * (width - filled)}] {progress * 100:5.1f}% {message}"[:100].ljust(100)


def results_table(result: dict[str, Any]) -> str:
    """One line per scoring function and aggregate, then the row count."""
    lines = []
    for fn, scores in sorted(result.get("scores", {}).items()):
        aggregated = scores.get("aggregated_results") or {}
        if not aggregated:
            lines.append((fn, "-", "-"))
        for name, value in sorted(aggregated.items()):
            lines.append((fn, name, _number(value)))
    width = [max(len(h), *(len(r[i]) for r in lines)) if lines else len(h)
             for i, h in enumerate(("scoring function", "aggregate", "value"))]
    header = ("scoring function", "aggregate", "value")
    text = [" | ".join(h.ljust(w) for h, w in zip(header, width)), "-+-".join("-" * w for w in width)]
    text += [" | ".join(c.ljust(w) for c, w in zip(row, width)) for row in lines]
    text.append(f"{len(result.get('generations', []))} rows")
    return "\n".join(text)


def _number(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True)
    return str(value)
