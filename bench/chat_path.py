"""The chat path's own cost, in process: a Llama Stack chat_completion and an
OpenAI chat completion through the inference router to an instant provider.

usage: python bench/chat_path.py [--calls 20000] [--rounds 5]

The provider (InstantProvider, a bench double) answers a fixed completion at
once, so the figures are what the router adds per call: the limits check,
the conversion to the OpenAI request (Llama Stack calls), the supported-field
check and the conversion of the answer back. The request is an agent's
typical one: a system prompt, a user message and three tools. Prints the
median over rounds of the mean µs per call, then how many pydantic passes
(validations, dumps, copies, constructions) one call of each kind makes.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from stack.apis.inference import SamplingParams, SystemMessage, ToolDefinition, ToolParamDefinition, UserMessage  # noqa: E402
from stack.apis.openai import OpenAIChatCompletion, OpenAIChatCompletionRequest  # noqa: E402
from stack.routing.models import ModelsRoutingTable  # noqa: E402
from stack.routing.routers import InferenceRouter  # noqa: E402
from stack.storage import SqliteStoreConfig, kvstore_from_config  # noqa: E402
from pydantic import BaseModel  # noqa: E402

ANSWER = OpenAIChatCompletion.model_validate({
    "id": "c", "created": 0, "model": "m", "usage": {"prompt_tokens": 30, "completion_tokens": 3, "total_tokens": 33},
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "Sunny, 21 °C."}, "finish_reason": "stop"}],
})
MESSAGES = [SystemMessage(content="You are a helpful assistant. Answer briefly."),
            UserMessage(content="What is the weather in Paris today, and should I take an umbrella?")]
TOOLS = [ToolDefinition(tool_name=f"tool_{i}", description="Looks something up",
                        parameters={"city": ToolParamDefinition(param_type="str", description="A city")})
         for i in range(3)]
OPENAI = OpenAIChatCompletionRequest.model_validate({
    "model": "m", "max_tokens": 64, "temperature": 0.0,
    "messages": [{"role": "system", "content": MESSAGES[0].content}, {"role": "user", "content": MESSAGES[1].content}],
    "tools": [{"type": "function", "function": {"name": t.tool_name, "description": t.description, "parameters": {
        "type": "object", "properties": {"city": {"type": "string", "description": "A city"}}, "required": ["city"]}}}
        for t in TOOLS],
})


class InstantProvider:
    """Bench double: an OpenAI-shaped inference provider that answers at once."""

    openai_params = frozenset(OpenAIChatCompletionRequest.model_fields)

    async def openai_chat_completion(self, request):
        return ANSWER


async def per_call_us(call, calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        await call()
    return (time.perf_counter() - start) / calls * 1e6


PASSES = ("__init__", "model_validate", "model_validate_json", "model_construct", "model_copy",
          "model_dump", "model_dump_json")


@contextlib.contextmanager
def counting_pydantic_passes():
    """Counts calls of BaseModel's validating/serialising entry points; only
    outermost calls count, so one validation that builds nested models is
    one pass."""
    counts: collections.Counter[str] = collections.Counter()
    depth = [0]
    originals = {name: BaseModel.__dict__[name] for name in PASSES}

    def wrap(name, original):
        is_classmethod = isinstance(original, classmethod)
        func = original.__func__ if is_classmethod else original

        def counted(*args, **kwargs):
            if depth[0] == 0:
                counts[name] += 1
            depth[0] += 1
            try:
                return func(*args, **kwargs)
            finally:
                depth[0] -= 1
        return classmethod(counted) if is_classmethod else counted

    for name, original in originals.items():
        setattr(BaseModel, name, wrap(name, original))
    try:
        yield counts
    finally:
        for name, original in originals.items():
            setattr(BaseModel, name, original)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        store = await kvstore_from_config(SqliteStoreConfig(db_path=str(Path(tmp) / "registry.db")))
        table = ModelsRoutingTable(store, {"instant": InstantProvider()}, routed_api="inference")
        await table.initialize()
        await table.register_model("m", provider_id="instant")
        router = InferenceRouter(table)
        sampling = SamplingParams(max_tokens=64)
        cases = {
            "Llama Stack chat_completion": lambda: router.chat_completion(
                model_id="m", messages=MESSAGES, tools=TOOLS, sampling_params=sampling),
            "OpenAI chat completion": lambda: router.openai_chat_completion(OPENAI),
        }
        results: dict[str, list[float]] = {name: [] for name in cases}
        for _ in range(args.rounds):  # interleaved, so load changes hit both alike
            for name, call in cases.items():
                results[name].append(await per_call_us(call, args.calls))
        for name, figures in results.items():
            print(f"{name:30s} {statistics.median(figures):7.1f} µs per call (median of {args.rounds} rounds)")
        for name, call in cases.items():
            with counting_pydantic_passes() as counts:
                await call()
            detail = ", ".join(f"{method} {n}" for method, n in sorted(counts.items()))
            print(f"{name:30s} {sum(counts.values()):3d} pydantic passes per call ({detail})")
        await store.close()


if __name__ == "__main__":
    asyncio.run(main())
