"""In-process latency of ``inline::pattern-guard``'s run_shield (no HTTP).

    python bench/pattern_guard.py [--kb 4] [--runs 2000]

Method: the provider with every built-in detector plus two rules (a
case-sensitive regex for US social security numbers and a case-insensitive
list of 5 keywords), one shield with no params; and, for comparison, the
detectors alone. The message
is ``--kb`` KiB of ordinary prose with digits, dates, prices and order numbers
mixed in (no matches: the common case, and the whole text is scanned), and
the same message with one card number, one e-mail and one AWS key appended
(a violation is built). Each case runs ``--runs`` times after 200 warm-up
calls; p50 and p99 of ``time.perf_counter`` around ``await run_shield(...)``.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from providers.inline.safety.pattern_guard.config import PatternGuardConfig  # noqa: E402
from providers.inline.safety.pattern_guard.provider import PatternGuardSafety  # noqa: E402
from stack.apis.inference import UserMessage  # noqa: E402
from stack.apis.shields import Shield  # noqa: E402

PROSE = ("On 2024-03-15 the team shipped release 4.2.1 to 1,250 customers; order 88412390 cost $1,299.99 "
         "and arrives in 3-5 days. Version 10.0.19045 of the client talks to 192.168.0.12 on port 8321. "
         "The meeting moved from 10:30 to 14:00 because 12 of 40 seats were taken. ")
SECRETS = " Card 4111 1111 1111 1111, mail jane@example.com, key AKIAIOSFODNN7EXAMPLE."


async def measure(provider: PatternGuardSafety, text: str, runs: int) -> tuple[float, float]:
    messages = [UserMessage(content=text)]
    for _ in range(200):
        await provider.run_shield("bench", messages, {})
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        await provider.run_shield("bench", messages, {})
        times.append(time.perf_counter() - start)
    times.sort()
    return statistics.median(times) * 1e3, times[int(len(times) * 0.99) - 1] * 1e3


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kb", type=float, default=4)
    parser.add_argument("--runs", type=int, default=2000)
    args = parser.parse_args()

    config = PatternGuardConfig.model_validate({"rules": [
        {"name": "ssn", "regex": r"\d{3}-\d{2}-\d{4}", "case_sensitive": True},
        {"name": "codenames", "keywords": ["project falcon", "bluebird", "nightjar", "kestrel", "osprey"]},
    ]})
    size = int(args.kb * 1024)
    clean = (PROSE * (size // len(PROSE) + 1))[:size]
    for label, cfg in [("detectors + 2 rules", config), ("detectors only", PatternGuardConfig())]:
        provider = PatternGuardSafety(cfg, provider_id="bench")
        await provider.register_shield(Shield(identifier="bench", provider_resource_id="bench", provider_id="bench"))
        for name, text in [("no match", clean), ("3 matches", clean + SECRETS)]:
            p50, p99 = await measure(provider, text, args.runs)
            print(f"{label:>20}, {name:>9}: {len(text):>6} chars  p50 {p50:.3f} ms  p99 {p99:.3f} ms")


if __name__ == "__main__":
    asyncio.run(main())
