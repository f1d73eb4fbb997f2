"""Training on trajectories, in the job's worker process: GRPO on groups, or SFT on dialogs.

The adapter trained is the start model's own when it is a checkpoint of this provider (the
run goes on from it), else a fresh LoRA adapter on the start model. Every event (started,
one a gradient step) is appended to ``events.jsonl`` as it happens, for the server to page
through while the job runs, and returned in the result.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import torch

from providers.utils.inference.transformers_loading import load_model, resolve_device
from providers.utils.inference.transformers_models import TransformersModelConfig
from stack.jobs import JobContext

from ._grpo import LossSettings, balance, group_advantages, policy_loss, token_logprobs
from ._sequences import Sequence, Tokenizing, dialog_sequences, has_nan, trajectory_sequences
from ._train import FALLBACK_TEMPLATE, _with_lora

MAX_GRAD_NORM = 1.0
FILL_BATCH = 8
EVENTS_FILE = "events.jsonl"
ADAPTER_DIR = "adapter"


class _Events:
    def __init__(self, path: Path) -> None:
        self.path, self.items = path, []
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("", encoding="utf-8")

    def add(self, kind: str, data: dict[str, Any]) -> None:
        event = {"type": kind, "data": data}
        self.items.append(event)
        with self.path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(event) + "\n")


class _Policy:
    """The model with its trainable adapter, and how text becomes its tokens."""

    def __init__(self, p: dict[str, Any]) -> None:
        torch.manual_seed(p["seed"])
        device = resolve_device(p["device"])
        # CPU trains in float32 (bf16 matmuls there are slow and imprecise)
        loaded = load_model(TransformersModelConfig.model_validate(p["base"]), device,
                            "float32" if device == "cpu" else "bfloat16")
        if p.get("resume_adapter"):
            from peft import PeftModel

            self.model = PeftModel.from_pretrained(loaded.model, p["resume_adapter"], is_trainable=True)
        else:
            self.model = _with_lora(loaded.model, p["lora"], p["seed"])
        self.model.train()
        self.device, self.dtype, self.pad = loaded.device, loaded.dtype_name, loaded.pad_id
        tokenizer, template = loaded.tokenizer, loaded.chat_template or FALLBACK_TEMPLATE
        self.tok = Tokenizing(
            render=lambda messages, prompt: tokenizer.apply_chat_template(
                messages, chat_template=template, tokenize=False, add_generation_prompt=prompt),
            encode=lambda text: tokenizer(text, add_special_tokens=False)["input_ids"],
            end_ids=set(loaded.eos_ids), end_of_turn=loaded.eos_ids[0] if loaded.eos_ids else None,
            max_len=p["max_seq_len"])
        self.params = [q for q in self.model.parameters() if q.requires_grad]
        self.optimizer = torch.optim.AdamW(self.params, lr=1e-4, weight_decay=0.0)

    def batch(self, sequences: list[Sequence]) -> dict[str, torch.Tensor]:
        width = max(len(s.ids) for s in sequences)

        def rows(values, fill):
            return [v + [fill] * (width - len(v)) for v in values]

        def tensor(values, dtype):
            return torch.tensor(values, dtype=dtype, device=self.device)

        return {"input_ids": tensor(rows([s.ids for s in sequences], self.pad), torch.long),
                "attention_mask": tensor(rows([[1] * len(s.ids) for s in sequences], 0), torch.long),
                "mask": tensor(rows([s.mask for s in sequences], 0), torch.float32),
                "old": tensor(rows([s.old for s in sequences], 0.0), torch.float32),
                "advantages": tensor(rows([[s.advantage] * len(s.ids) for s in sequences], 0.0), torch.float32)}

    def logprobs(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return token_logprobs(self.model, batch["input_ids"], batch["attention_mask"])

    @torch.no_grad()
    def fill_old_logprobs(self, sequences: list[Sequence]) -> None:
        """Old log-probs the log lacked: the start policy's (it sampled them, or is closest to what did)."""
        self.model.eval()
        missing = [s for s in sequences if has_nan(s.old)]
        for start in range(0, len(missing), FILL_BATCH):  # right padding leaves the real tokens' values as they are
            chunk = missing[start:start + FILL_BATCH]
            for s, computed in zip(chunk, self.logprobs(self.batch(chunk)).tolist()):
                s.old = [c if o != o else o for o, c in zip(s.old, computed)]  # o != o: NaN
        self.model.train()

    def step(self, loss: torch.Tensor, learning_rate: float) -> float:
        for group in self.optimizer.param_groups:
            group["lr"] = learning_rate
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(self.params, MAX_GRAD_NORM)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return float(norm)


def _lines(path: str) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def grpo_steps(policy: _Policy, groups: list[dict[str, Any]], scale_rewards: bool) -> list[list[Sequence]]:
    """One step a group with any nonzero advantage: its sequences, each carrying its trajectory's advantage."""
    steps = []
    for index, group in enumerate(groups):
        trajectories = group.get("trajectories", [])
        advantages = group_advantages([t["reward"] for t in trajectories], scale_rewards)
        sequences = []
        for trajectory, advantage in zip(trajectories, advantages):
            if advantage == 0:
                continue
            for sequence in trajectory_sequences(policy.tok, trajectory):
                sequence.advantage, sequence.group = advantage, index
                sequences.append(sequence)
        if sequences:
            steps.append(sequences)
    return steps


def train_trajectories(ctx: JobContext) -> dict[str, Any]:
    """The job: every step's metrics as events, the adapter saved, and what serves it."""
    p, started = ctx.params, time.monotonic()
    output = Path(p["output_dir"])
    events = _Events(output / EVENTS_FILE)
    policy = _Policy(p)
    algorithm = p["algorithm"]
    grpo = algorithm["type"] == "grpo"
    if grpo:
        steps = grpo_steps(policy, _lines(p["data_file"]), algorithm.get("scale_rewards") is not False)
        policy.fill_old_logprobs([s for step in steps for s in step])
        settings = LossSettings.from_config(algorithm)
        rate = algorithm.get("learning_rate") or 5e-6
        rates = [rate] * len(steps)
    else:
        sequences = [s for row in _lines(p["data_file"]) for s in dialog_sequences(policy.tok, row["messages"])]
        size = algorithm["batch_size"]
        steps = [sequences[i:i + size] for i in range(0, len(sequences), size)]
        given = algorithm["learning_rate"]
        rates = [given[min(i, len(given) - 1)] if isinstance(given, list) else given for i in range(len(steps))]
    events.add("training_started", {"num_sequences": len(steps)})
    ctx.report(0.0, f"{algorithm['type']}: {len(steps)} steps on {policy.device}")
    losses = []
    for i, (sequences, rate) in enumerate(zip(steps, rates)):
        batch = policy.batch(sequences)
        new = policy.logprobs(batch)
        if grpo:
            advantages = balance(batch["advantages"], algorithm.get("advantage_balance") or 0.0)
            loss, stats = policy_loss(new, batch["old"], advantages, batch["mask"], settings)
        else:
            loss, stats = -(new * batch["mask"]).sum() / batch["mask"].sum().clamp(min=1), {}
        metrics = {"loss": loss.item(), "grad_norm": policy.step(loss, rate), "learning_rate": float(rate),
                   "num_trainable_tokens": float(batch["mask"].sum()), "num_trajectories": float(len(sequences)),
                   **stats}
        losses.append(metrics["loss"])
        events.add("gradient_step", metrics)
        ctx.report((i + 1) / len(steps), f"{algorithm['type']}: step {i + 1} of {len(steps)}, loss {metrics['loss']:.4f}")
    path = output / ADAPTER_DIR
    policy.model.save_pretrained(str(path))
    base = p["base"]
    summary = {"train_loss": sum(losses) / len(losses)} if losses else {}
    return {
        "checkpoints": [{"epoch": 1, "iters": len(steps), "path": str(path), "training_metrics": summary}],
        "losses": losses, "events": events.items,
        "serve": {"model_id": f"{p['job_uuid']}-adapter", "transformers": {**base, "adapters": [*base.get("adapters", []), str(path)]}},
        "resources_allocated": {"device": policy.device, "dtype": policy.dtype},
        "seconds": round(time.monotonic() - started, 3),
    }
