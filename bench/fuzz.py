"""The long property-based API run: schemathesis against a real `polystack run`
(starter, tight server.limits), no bound on examples per operation.

usage: python bench/fuzz.py [--max-time 1800] [--seed N] [--workers 1] [--report DIR]

The CI suite (tests/fuzz) is the same run with a fixed seed and 10 examples per
operation. Without --seed every run explores new inputs; a failure prints a
curl line that reproduces it. Exits non-zero on any 500 or response that does
not match the OpenAPI document. Traffic goes only to the server on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.fuzz._schemathesis import fuzz_server, run_schemathesis, summary  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-time", type=int, default=1800, help="seconds of fuzzing (fuzzing and stateful repeat until spent)")
    parser.add_argument("--seed", type=int, default=None, help="fix the seed to reproduce a run")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--report", type=Path, default=None, help="folder for report.json and the server log")
    args = parser.parse_args()
    out = args.report or Path(tempfile.mkdtemp(prefix="polystack-fuzz-"))
    out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with fuzz_server(out / "home") as server:
        code, output = run_schemathesis(server.base_url, out / "report.json", max_examples=None, seed=args.seed,
                                        max_time=args.max_time, workers=args.workers)
        (out / "server.log").write_text(server.output())
    print(output)
    found = summary(out / "report.json")
    print(f"{found['operations']} operations, {found['cases']} cases, {found['failures']} failures, "
          f"{found['errors']} errors in {time.monotonic() - started:.0f} s; report and server log in {out}")
    return code


if __name__ == "__main__":
    sys.exit(main())
