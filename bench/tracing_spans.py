"""The four spans of a proxied chat request, timed alone: the middleware's root span
(``stack.server.tracing``, made current with the request's values as the middleware does), the
router and provider spans (``tracing.instrument`` with the inference hooks of
``stack._trace_stack``) and the upstream span (as ``UpstreamClient.send`` makes it), around
stand-in calls that do nothing else. Tracing off and on alternate; the figure is the fastest
round's CPU per request. No HTTP, no sinks: the buffer is emptied every 100 requests (400
spans), as a flush would take it (its encoding of each span counts), before it holds a batch
(500 spans), when a server's would wake the flush task.

``--instructions`` counts machine instructions instead, with valgrind's callgrind (steady
where CPU time on two shared cores is not): tracing on and off each run alone at 2,000 and
6,000 requests, and the difference of the two runs over 4,000 is a request's count, start-up
left out. ``--base-tree DIR`` counts another checkout's code as well (a git worktree).

usage: python bench/tracing_spans.py [--requests 20000] [--rounds 6]
       python bench/tracing_spans.py --instructions [--base-tree DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import gc
import sys
import time
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from stack import _trace_stack, tracing  # noqa: E402
from stack.request_context import reset_request, set_request  # noqa: E402
from stack.cli import GC_YOUNG_THRESHOLD  # noqa: E402
from stack.server.tracing import finish_root, start_request  # noqa: E402
from tracing_instructions import callgrind_total  # noqa: E402  (bench/, on the path of a script run from it)

SCOPE = {
    "type": "http", "method": "POST", "path": "/v1/chat/completions",
    "headers": [(b"host", b"bench"), (b"content-type", b"application/json"), (b"content-length", b"100")],
    "route": SimpleNamespace(path="/v1/chat/completions"),
}
HEADERS = dict(SCOPE["headers"])
RESULT = SimpleNamespace(model="bench-upstream", usage=SimpleNamespace(prompt_tokens=5, completion_tokens=7))
REQUEST = SimpleNamespace(model="bench")


async def upstream_call() -> None:
    """What ``UpstreamClient.send`` does for tracing around a call."""
    started = tracing.start_upstream("POST", "http://127.0.0.1:1/v1/chat/completions", "upstream")
    if started is None:
        return
    span, _traceparent = started
    tracing.finish_upstream(span, 200)


class Provider:
    async def openai_chat_completion(self, request):
        await upstream_call()
        return RESULT


class Router:
    def __init__(self, provider: Provider) -> None:
        self.provider = provider

    async def openai_chat_completion(self, request):
        return await self.provider.openai_chat_completion(request)


async def measure(requests: int, rounds: int, modes: tuple[str, ...] = ("off", "on")) -> dict[str, float]:
    provider = Provider()
    router = Router(provider)
    _trace_stack.instrument_provider(provider, "inference", ["openai"], "upstream", "remote::openai")
    _trace_stack.instrument_router(router, "inference", ["openai"])
    collector = tracing.Collector([], max_buffer=10**9)
    per_request: dict[str, list[float]] = {mode: [] for mode in modes}
    for round_ in range(rounds * len(modes)):
        mode = modes[round_ % len(modes)]
        tracing.install(collector if mode == "on" else None)
        started = time.thread_time()
        for n in range(requests):
            root = start_request(SCOPE, HEADERS)
            token = set_request("bench", None, root[0] if root is not None else None)  # as the middleware does
            await router.openai_chat_completion(REQUEST)
            reset_request(token)
            if root is not None:
                finish_root(root, 200, None, SCOPE)
            if n % 100 == 99:
                collector._spans.clear()
        per_request[mode].append((time.thread_time() - started) / requests * 1e6)
        collector._spans.clear()
    tracing.install(None)
    return {mode: min(values) for mode, values in per_request.items()}


def instructions(tree: Path, mode: str, requests: int) -> int:
    """Instructions the whole run of ``mode`` alone takes, ``requests`` requests, with ``tree``'s code."""
    command = [str(tree / "bench" / "tracing_spans.py"), "--requests", str(requests), "--rounds", "1", "--mode", mode]
    return callgrind_total(tree, command, env={"PYTHONHASHSEED": "0"})


def count_instructions(trees: dict[str, Path]) -> None:
    jobs = [(name, mode, n) for name in trees for mode in ("off", "on") for n in (2000, 6000)]
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        totals = dict(zip(jobs, pool.map(lambda job: instructions(trees[job[0]], job[1], job[2]), jobs)))
    print("instructions per request (callgrind; (6,000 requests - 2,000) / 4,000)")
    print("| code | tracing off | tracing on | the four spans cost |")
    print("|---|---|---|---|")
    for name in trees:
        off, on = ((totals[name, mode, 6000] - totals[name, mode, 2000]) // 4000 for mode in ("off", "on"))
        print(f"| {name} | {off:,} | {on:,} | {on - off:+,} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--mode", choices=("off", "on", "both"), default="both")
    parser.add_argument("--instructions", action="store_true")
    parser.add_argument("--base-tree", type=Path)
    args = parser.parse_args()
    if args.instructions:
        trees = {"after": Path(__file__).resolve().parents[1]}
        if args.base_tree:
            trees["before"] = args.base_tree.resolve()
        count_instructions(trees)
        return
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])  # as `polystack run` serves
    modes = ("off", "on") if args.mode == "both" else (args.mode,)
    best = asyncio.run(measure(args.requests, args.rounds, modes))
    if args.mode != "both":
        print(f"{args.mode} {best[args.mode]:.2f} µs")
        return
    print(f"off {best['off']:.2f} µs, on {best['on']:.2f} µs: the four spans cost "
          f"{best['on'] - best['off']:+.2f} µs of CPU per request (fastest of {args.rounds} rounds)")


if __name__ == "__main__":
    main()
