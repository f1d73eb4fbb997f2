"""Running schemathesis against a real `polystack run`, shared by the CI suite
(tests/fuzz/test_api_fuzz.py) and the long run (bench/fuzz.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.support import ServerProcess, starter_with_server

SEED = 20261204
CHECKS = "not_a_server_error,response_schema_conformance,client_error_names_the_field"
#: the module that registers client_error_names_the_field (tests/fuzz/_checks.py)
HOOKS = "tests.fuzz._checks"
ROOT = Path(__file__).resolve().parents[2]
PHASES = "examples,coverage,fuzzing,stateful"
# generation bounds for the fuzz server: every inference request stays short
LIMITS = {"max_tokens": 8, "max_n": 2, "max_top_logprobs": 2}


def fuzz_server(home: Path) -> ServerProcess:
    """The starter with tight generation limits and no fetches beyond loopback-refusing defaults."""
    import yaml

    home.mkdir(parents=True, exist_ok=True)
    config = starter_with_server(home / "run.yaml", limits=LIMITS, fetch={"public_hosts": False})
    loaded = yaml.safe_load(config.read_text())
    # a synthetic data request is many generations: one short candidate each keeps a case short
    for entry in loaded["providers"]["synthetic_data_generation"]:
        entry["config"].update(num_candidates=1, sampling_params={"max_tokens": 8})
    config.write_text(yaml.safe_dump(loaded, sort_keys=False))
    return ServerProcess(str(config), home=home)


def run_schemathesis(base_url: str, report: Path, *, max_examples: int | None, seed: int | None,
                     max_time: int | None = None, workers: int = 1) -> tuple[int, str]:
    """(exit code, output) of ``st run`` over the served document of ``base_url``.

    One worker by default: with two, schemathesis's generator failed in CI on its own (hypothesis
    parsing sources in two threads hit CPython 3.11's "AST constructor recursion depth mismatch",
    gh-106905, and a coverage case came out "inconsistent"), and generation is GIL-bound, so the
    second thread bought no time (71 s with one worker, 76-80 s with two, same seed)."""
    cmd = [sys.executable, "-m", "schemathesis.cli", "run", f"{base_url}/openapi.json",
           "--checks", CHECKS, "--phases", PHASES, "--workers", str(workers),
           "--continue-on-failure", "--request-timeout", "60", "--no-color",
           "--generation-database", "none", "--report", "json", "--report-json-path", str(report)]
    if max_examples is not None:
        cmd += ["--max-examples", str(max_examples)]
    if seed is not None:
        cmd += ["--seed", str(seed)]
    if max_time is not None:
        cmd += ["--max-time", str(max_time)]
    # cwd: schemathesis keeps its own state in .schemathesis/ there
    env = {**os.environ, "SCHEMATHESIS_HOOKS": HOOKS,
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=report.parent, env=env, check=False)
    return done.returncode, done.stdout + done.stderr


def summary(report: Path) -> dict:
    """Operations fuzzed, cases generated, failures and errors, from the JSON report."""
    data = json.loads(report.read_text())
    return {
        "operations": data["operations"]["tested"],
        "cases": data["test_cases"]["generated"],
        "failures": sum(f.get("count", 1) for f in data["failures"]),
        "errors": sum(e.get("count", 1) for e in data["errors"]),
        "error_titles": [e.get("title") for e in data["errors"]],
        "seconds": round(data["running_time"], 1),
        "phases": {name: phase["status"] for name, phase in data["phases"].items()},
    }
