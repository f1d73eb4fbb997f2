"""The training itself, in the job's worker process: LoRA SFT and DPO with transformers and peft.

``ctx.params`` (JSON) carry everything: the base model's entry, the rows file
the server wrote, the training config and where checkpoints go. Nothing here
calls the server. ``ctx.report`` after every batch is how a cancel arrives.
"""

from __future__ import annotations

import json
import math
import random
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from providers.utils.inference.transformers_loading import load_model, resolve_device
from providers.utils.inference.transformers_models import TransformersModelConfig
from stack.jobs import JobContext

from .config import ATTN_MODULES, TRAINING_DTYPES

IGNORE = -100
# for tokenizers without a chat template: ChatML, as SmolLM2 has
FALLBACK_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
MLP_MODULES = ["gate_proj", "up_proj", "down_proj"]


class _Trainer:
    """Model, tokenizer, optimizer and the batches of one job."""

    def __init__(self, ctx: JobContext) -> None:
        self.ctx, self.p = ctx, ctx.params
        torch.manual_seed(self.p["seed"])
        self.rng = random.Random(self.p["seed"])
        entry = TransformersModelConfig.model_validate(self.p["base"])
        device = resolve_device(self.p["device"])
        # CPU trains in float32 (bf16 matmuls there are slow and imprecise); a GPU in the asked dtype
        dtype = TRAINING_DTYPES[self.p["training"]["dtype"]] if device != "cpu" else "float32"
        loaded = load_model(entry, device, dtype)
        self.tokenizer, self.device, self.dtype = loaded.tokenizer, loaded.device, loaded.dtype_name
        self.template = loaded.chat_template or FALLBACK_TEMPLATE
        self.eos = loaded.eos_ids[0] if loaded.eos_ids else None
        self.pad = loaded.pad_id
        self.model = _with_lora(loaded.model, self.p["lora"], self.p["seed"])
        if (self.p["training"].get("efficiency_config") or {}).get("enable_activation_checkpointing"):
            self.model.gradient_checkpointing_enable()
            self.model.enable_input_require_grads()
        self.model.train()
        opt = self.p["training"]["optimizer_config"]
        params = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = _optimizer(opt, params)
        warmup = opt["num_warmup_steps"]
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda step: min(1.0, (step + 1) / warmup) if warmup > 0 else 1.0)
        self.trainable = sum(p.numel() for p in params)
        self.started = time.monotonic()

    # -- tokens ----------------------------------------------------------------------------------

    def render(self, messages: list[dict[str, str]], generation_prompt: bool) -> str:
        return self.tokenizer.apply_chat_template(messages, chat_template=self.template, tokenize=False,
                                                  add_generation_prompt=generation_prompt)

    def encode(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def dialog_example(self, messages: list[dict[str, str]], train_on_input: bool) -> tuple[list[int], list[int]]:
        """Tokens of a whole dialog and their labels: the assistant turns' (all when ``train_on_input``)."""
        ids: list[int] = []
        labels: list[int] = []
        for i, message in enumerate(messages):
            if message["role"] == "assistant":
                prompt = self.encode(self.render(messages[:i], True))[len(ids):]
                ids += prompt
                labels += prompt if train_on_input else [IGNORE] * len(prompt)
                turn = self.encode(self.render(messages[: i + 1], False))[len(ids):]
                ids += turn
                labels += turn
        cut = self.p["max_seq_len"]
        return ids[:cut], labels[:cut]

    def batch(self, examples: list[tuple[list[int], list[int]]]) -> dict[str, torch.Tensor]:
        width = max(len(ids) for ids, _ in examples)
        ids = [x + [self.pad] * (width - len(x)) for x, _ in examples]
        labels = [y + [IGNORE] * (width - len(y)) for _, y in examples]
        mask = [[1] * len(x) + [0] * (width - len(x)) for x, _ in examples]
        return {name: torch.tensor(rows, dtype=torch.long, device=self.device)
                for name, rows in (("input_ids", ids), ("labels", labels), ("attention_mask", mask))}

    def batches(self, examples: list[Any], shuffle: bool) -> list[list[Any]]:
        order = list(range(len(examples)))
        if shuffle:
            self.rng.shuffle(order)
        size = self.p["training"]["data_config"]["batch_size"]
        return [[examples[i] for i in order[start:start + size]] for start in range(0, len(order), size)]

    # -- loop ------------------------------------------------------------------------------------

    def run(self, examples: list[Any], loss_fn, validation: list[Any], kind: str) -> dict[str, Any]:
        """Epochs of optimizer steps (each ``gradient_accumulation_steps`` batches); a checkpoint per epoch."""
        cfg = self.p["training"]
        accumulate = cfg["gradient_accumulation_steps"]
        steps_per_epoch = min(cfg["max_steps_per_epoch"], math.ceil(len(examples) / cfg["data_config"]["batch_size"] / accumulate))
        total = max(1, cfg["n_epochs"] * steps_per_epoch)
        step, losses, checkpoints, extra, step_seconds = 0, [], [], {}, []
        self.ctx.report(0.0, f"{kind}: {total} steps on {self.device}")
        self.ctx.log(f"{kind}: {len(examples)} examples, {total} steps on {self.device} ({self.dtype}), "
                     f"{self.trainable} trainable parameters")
        for epoch in range(cfg["n_epochs"]):
            batches = self.batches(examples, cfg["data_config"]["shuffle"])
            epoch_losses = []
            for epoch_step in range(steps_per_epoch):
                group = batches[epoch_step * accumulate:(epoch_step + 1) * accumulate]  # the last may be short
                step_loss, stats, step_start = 0.0, {}, time.monotonic()
                for batch in group:
                    loss, stats = loss_fn(batch)
                    (loss / len(group)).backward()
                    step_loss += loss.item() / len(group)
                    self.ctx.report(step / total, f"{kind}: step {step + 1} of {total}")
                lr = self.optimizer.param_groups[0]["lr"]  # the rate this step used
                self.optimizer.step()
                self.scheduler.step()
                self.optimizer.zero_grad(set_to_none=True)
                step += 1
                step_seconds.append(round(time.monotonic() - step_start, 4))
                losses.append(step_loss)
                epoch_losses.append(step_loss)
                for name, value in stats.items():
                    extra.setdefault(name, []).append(value)
                self.ctx.report(step / total, f"{kind}: step {step} of {total}, loss {step_loss:.4f}")
                self.ctx.log(_log_line(step, total, epoch + 1, step_loss, lr, step_seconds[-1], stats))
            metrics = {"train_loss": sum(epoch_losses) / max(len(epoch_losses), 1)}
            if validation:
                metrics["validation_loss"] = self.validate(validation, loss_fn)
            self.ctx.log(f"epoch {epoch + 1}/{cfg['n_epochs']} " + " ".join(f"{k}={v:.4f}" for k, v in metrics.items()))
            path = Path(self.p["output_dir"]) / f"epoch-{epoch + 1}"
            self.model.save_pretrained(str(path))
            checkpoints.append({"epoch": epoch + 1, "iters": step, "path": str(path), "training_metrics": metrics})
        return {"checkpoints": checkpoints, "losses": losses, "step_seconds": step_seconds, **extra,
                "resources_allocated": {"device": self.device, "dtype": self.dtype, "trainable_parameters": self.trainable},
                "seconds": round(time.monotonic() - self.started, 3)}

    @torch.no_grad()
    def validate(self, examples: list[Any], loss_fn) -> float:
        self.model.eval()
        batches = self.batches(examples, False)[: self.p["training"]["max_validation_steps"]]
        values = [loss_fn(batch)[0].item() for batch in batches]
        self.model.train()
        return sum(values) / max(len(values), 1)


def _log_line(step: int, total: int, epoch: int, loss: float, lr: float, seconds: float, stats: dict[str, float]) -> str:
    """One step of the job's log: ``key=value`` pairs, easy to read and to parse."""
    extra = "".join(f" {name}={value:.4f}" for name, value in stats.items())
    return f"step {step}/{total} epoch={epoch} loss={loss:.4f} lr={lr:.3g} seconds={seconds:.3f}{extra}"


def _with_lora(model: Any, lora: dict[str, Any], seed: int) -> Any:
    from peft import LoraConfig, get_peft_model

    targets = sorted({ATTN_MODULES[m] for m in lora["lora_attn_modules"]})
    if lora["apply_lora_to_mlp"]:
        targets += MLP_MODULES
    if lora["apply_lora_to_output"]:
        targets.append("lm_head")
    torch.manual_seed(seed)
    config = LoraConfig(r=lora["rank"], lora_alpha=lora["alpha"], target_modules=targets, lora_dropout=0.0,
                        use_dora=lora["use_dora"], bias="none", task_type="CAUSAL_LM")
    return get_peft_model(model, config)


def _optimizer(opt: dict[str, Any], params: list[torch.nn.Parameter]) -> torch.optim.Optimizer:
    kind = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "sgd": torch.optim.SGD}[opt["optimizer_type"]]
    return kind(params, lr=opt["lr"], weight_decay=opt["weight_decay"])


def _rows(path: str) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


# -- supervised fine-tuning ------------------------------------------------------------------------


def supervised_fine_tune(ctx: JobContext) -> dict[str, Any]:
    """The SFT job: rows are ``{"messages": [...]}``; the loss is on the assistant turns."""
    trainer = _Trainer(ctx)
    train_on_input = ctx.params["training"]["data_config"]["train_on_input"]
    examples = [trainer.dialog_example(r["messages"], train_on_input) for r in _rows(ctx.params["rows_file"])]
    validation = [trainer.dialog_example(r["messages"], train_on_input)
                  for r in _rows(ctx.params["validation_file"])] if ctx.params.get("validation_file") else []

    def loss_fn(batch):
        return trainer.model(**trainer.batch(batch)).loss, {}

    return trainer.run(examples, loss_fn, validation, "sft")


# -- preference optimization (DPO) -----------------------------------------------------------------


def dpo_loss(policy_chosen: torch.Tensor, policy_rejected: torch.Tensor, ref_chosen: torch.Tensor,
             ref_rejected: torch.Tensor, beta: float, loss_type: str = "sigmoid") -> tuple[torch.Tensor, torch.Tensor]:
    """DPO's loss (mean over pairs) and each pair's reward margin ``beta * h``, where ``h`` is how much more
    the policy than the reference prefers the chosen answer: (log pi_c - log ref_c) - (log pi_r - log ref_r).

    sigmoid: -log sigmoid(beta h) (Rafailov et al. 2023); hinge: relu(1 - beta h); ipo: (h - 1/(2 beta))^2.
    """
    h = (policy_chosen - ref_chosen) - (policy_rejected - ref_rejected)
    if loss_type == "sigmoid":
        losses = -F.logsigmoid(beta * h)
    elif loss_type == "hinge":
        losses = torch.relu(1 - beta * h)
    elif loss_type == "ipo":
        losses = (h - 1 / (2 * beta)) ** 2
    else:
        raise ValueError(f"unknown DPO loss type {loss_type!r}")
    return losses.mean(), (beta * h).detach()


def sequence_logprobs(model: Any, batch: dict[str, torch.Tensor], mean: bool = False) -> torch.Tensor:
    """Each row's summed (or, with ``mean``, per-token) log-probability of its labelled tokens."""
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, :-1].float()
    labels = batch["labels"][:, 1:]
    mask = labels != IGNORE
    picked = torch.gather(logits.log_softmax(-1), 2, labels.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    total = (picked * mask).sum(-1)
    return total / mask.sum(-1).clamp(min=1) if mean else total


def preference_optimize(ctx: JobContext) -> dict[str, Any]:
    """The DPO job: rows are ``{"prompt": messages, "chosen": text, "rejected": text}``; the reference
    model is the base with the new adapter disabled (its log-probs are computed once, up front)."""
    trainer = _Trainer(ctx)
    beta, loss_type = ctx.params["dpo"]["beta"], ctx.params["dpo"]["loss_type"]
    mean = loss_type == "ipo"  # IPO is defined on length-normalized log-probs

    def pairs(path: str) -> list[dict[str, Any]]:
        out = []
        for row in _rows(path):
            chosen = trainer.dialog_example(row["prompt"] + [{"role": "assistant", "content": row["chosen"]}], False)
            rejected = trainer.dialog_example(row["prompt"] + [{"role": "assistant", "content": row["rejected"]}], False)
            out.append({"chosen": chosen, "rejected": rejected})
        return out

    def logprobs(batch):
        both = trainer.batch([p["chosen"] for p in batch] + [p["rejected"] for p in batch])
        values = sequence_logprobs(trainer.model, both, mean)
        return values[: len(batch)], values[len(batch):]

    def with_reference(examples):
        with torch.no_grad(), trainer.model.disable_adapter():
            for group in trainer.batches(examples, False):
                chosen, rejected = logprobs(group)
                for pair, c, r in zip(group, chosen.tolist(), rejected.tolist()):
                    pair["ref"] = (c, r)
        return examples

    examples = with_reference(pairs(ctx.params["rows_file"]))
    validation = with_reference(pairs(ctx.params["validation_file"])) if ctx.params.get("validation_file") else []

    def loss_fn(batch):
        chosen, rejected = logprobs(batch)
        ref = torch.tensor([p["ref"] for p in batch], device=chosen.device)
        loss, margins = dpo_loss(chosen, rejected, ref[:, 0], ref[:, 1], beta, loss_type)
        return loss, {"reward_margins": margins.mean().item(), "reward_accuracy": (margins > 0).float().mean().item()}

    return trainer.run(examples, loss_fn, validation, "dpo")
