"""``optimize_trajectories`` and ``job/events`` on the event loop: check the request, write the
groups for the worker, submit the job; page through a job's training events.

Mixed into ``HuggingFacePostTraining`` (it uses that class's model lookup, job list and serving).
Nothing here imports torch.
"""

from __future__ import annotations

import asyncio
import json
import math
import uuid
from pathlib import Path
from typing import Any

from stack.apis.post_training import (
    GRPOConfig,
    LoraFinetuningConfig,
    PostTrainingJob,
    TrajectorySFTConfig,
)
from stack.apis.trajectories import TrainingJobEvent, TrainingJobEventPage, TrajectoryGroup
from stack.errors import BadRequestError, ConflictError
from stack.jobs import FINAL, Job, JobStatus

MAX_EVENT_PAGE = 1000
#: the adapter a run on trajectories starts when its start model has none of this provider's to go on with
DEFAULT_LORA = LoraFinetuningConfig(lora_attn_modules=["q_proj", "k_proj", "v_proj", "output_proj"],
                                    apply_lora_to_mlp=True, apply_lora_to_output=False, rank=8, alpha=16)
_FAILED = {JobStatus.failed, JobStatus.cancelled, JobStatus.interrupted}


def _positive(value: Any, field: str) -> None:
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
        raise BadRequestError(f"must be a positive number, got {value!r}", field=field)


def check_algorithm(config: GRPOConfig | TrajectorySFTConfig, field: str) -> None:
    """400s for values the trainer cannot use; unknown art options sent with a value are refused by name."""
    unknown = sorted(k for k, v in (config.model_extra or {}).items() if v is not None)
    if unknown:
        raise BadRequestError("not supported by inline::huggingface", field=f"{field}.{unknown[0]}")
    if isinstance(config, TrajectorySFTConfig):
        rates = config.learning_rate if isinstance(config.learning_rate, list) else [config.learning_rate]
        if not rates:
            raise BadRequestError("give at least one learning rate", field=f"{field}.learning_rate")
        for rate in rates:
            _positive(rate, f"{field}.learning_rate")
        return
    if config.learning_rate is not None:
        _positive(config.learning_rate, f"{field}.learning_rate")
    for name in ("epsilon", "epsilon_high"):
        value = getattr(config, name)
        if value is not None and not (math.isfinite(value) and value >= 0):
            raise BadRequestError(f"must be 0 or more, got {value}", field=f"{field}.{name}")


def check_groups(groups: list[TrajectoryGroup], field: str, *, sampled_only: bool) -> None:
    """Every trajectory needs something to learn: with ``sampled_only`` (GRPO) a choice the model
    sampled, else an assistant message too. Groups whose rewards are all equal are allowed (they
    make no step: a job of only such groups leaves the adapter as it was, as a new checkpoint)."""
    if not groups or not any(g.trajectories for g in groups):
        raise BadRequestError("give at least one group with a trajectory", field=field)
    for i, group in enumerate(groups):
        for j, trajectory in enumerate(group.trajectories):
            items = trajectory.messages_and_choices
            if not any(hasattr(m, "finish_reason") or (not sampled_only and getattr(m, "role", None) == "assistant")
                       for m in items):
                what = "a choice (a completion the model sampled)" if sampled_only else "an assistant message"
                raise BadRequestError(f"has no {what} to learn",
                                      field=f"{field}[{i}].trajectories[{j}].messages_and_choices")


class TrajectoryJobs:
    """What ``HuggingFacePostTraining`` serves for training on trajectories."""

    async def optimize_trajectories(self, job_uuid: str, model: str, trajectory_groups: list[TrajectoryGroup],
                                    algorithm_config: GRPOConfig | TrajectorySFTConfig,
                                    lora_config: LoraFinetuningConfig | None = None) -> PostTrainingJob:
        from .provider import _JOB_UUID, _check_lora

        if self.jobs is None:
            raise BadRequestError("inline::huggingface runs outside a stack and has no job runner", field="job_uuid")
        job_uuid = job_uuid or f"tj-{uuid.uuid4().hex[:12]}"
        if not _JOB_UUID.match(job_uuid):
            raise BadRequestError("letters, digits, '.', '_' and '-' only (at most 128)", field="job_uuid")
        check_algorithm(algorithm_config, "algorithm_config")
        grpo = isinstance(algorithm_config, GRPOConfig)
        check_groups(trajectory_groups, "trajectory_groups", sampled_only=grpo)
        if lora_config is not None:
            _check_lora(lora_config, "lora_config")
        if any(j.params.get("job_uuid") == job_uuid for j in await self._jobs()):
            raise ConflictError(f"a post-training job {job_uuid!r} exists already; pick another job_uuid")
        entry, serve_with = await self._base(model, "model")
        base = entry.model_dump(mode="json", exclude_none=True)
        resume = None
        if entry.adapters and Path(entry.adapters[-1]).expanduser().resolve().is_relative_to(self.root):
            base["adapters"], resume = entry.adapters[:-1], entry.adapters[-1]  # our checkpoint: train it on
        output = self.root / job_uuid
        data_file = output / "data" / "train.jsonl"
        if grpo:
            lines = [g.model_dump(mode="json", exclude_unset=True) for g in trajectory_groups]
        else:
            lines = [{"messages": [m.model_dump(mode="json", exclude_none=True) for m in t.messages_and_choices]}
                     for g in trajectory_groups for t in g.trajectories]
        await asyncio.to_thread(_write_lines, data_file, lines)
        params = {
            "job_uuid": job_uuid, "provider_id": self.provider_id, "kind": f"trajectory_{algorithm_config.type}",
            "model": model, "base": base, "resume_adapter": resume, "serve_with": serve_with,
            "lora": (lora_config or DEFAULT_LORA).model_dump(mode="json"),
            "algorithm": algorithm_config.model_dump(mode="json", exclude_none=True),
            "output_dir": str(output), "data_file": str(data_file), "device": self.config.device,
            "max_seq_len": self.config.max_seq_len, "seed": self.config.seed,
        }
        from .provider import JOB_KIND

        job_id = await self.jobs.submit(JOB_KIND, train_on_trajectories, params=params, mode="process")
        if serve_with is not None:
            self._serve_later(job_id, job_uuid)
        return PostTrainingJob(job_uuid=job_uuid)

    async def get_training_job_events(self, job_uuid: str, after: str | None = None,
                                      limit: int = 100) -> TrainingJobEventPage:
        if not 1 <= limit <= MAX_EVENT_PAGE:
            raise BadRequestError(f"must be from 1 to {MAX_EVENT_PAGE}, got {limit}", field="limit")
        job = await self._job(job_uuid)
        events = await self._events(job)
        ids = [f"{job_uuid}:{i}" for i in range(len(events))]
        start = 0
        if after is not None:
            if after not in ids:
                raise BadRequestError(f"no event {after!r} of job {job_uuid!r}", field="after")
            start = ids.index(after) + 1
        page = [TrainingJobEvent(id=ids[i], **events[i]) for i in range(start, min(start + limit, len(events)))]
        return TrainingJobEventPage(data=page, first_id=page[0].id if page else None,
                                    last_id=page[-1].id if page else None, has_more=start + limit < len(events))

    async def _events(self, job: Job) -> list[dict[str, Any]]:
        """The job's events so far; the last one says how it ended once it has (after its checkpoint is served)."""
        result = job.result if isinstance(job.result, dict) else {}
        if "events" in result:
            events = list(result["events"])
        elif job.status in FINAL and "losses" in result:  # a spec SFT/DPO job: its steps, known at the end
            events = [{"type": "training_started", "data": {"num_sequences": len(result["losses"])}}]
            events += [{"type": "gradient_step", "data": {"loss": loss}} for loss in result["losses"]]
        else:
            events = await asyncio.to_thread(_read_events, Path(job.params.get("output_dir", "")) / "events.jsonl")
        if job.status == JobStatus.completed:
            if job.params.get("serve_with"):
                await self._serve(job)  # the checkpoint answers chat before the client hears the job ended
            events.append({"type": "training_ended", "data": {}})
        elif job.status in _FAILED:
            message = job.error or f"the job was {job.status.value}"
            events.append({"type": "training_failed", "data": {"error_message": message}})
        return events


def _write_lines(path: Path, lines: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")


def _read_events(path: Path) -> list[dict[str, Any]]:
    """The events a running worker wrote (a line being written is left for the next read)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return []
    events = []
    for line in text.split("\n")[:-1]:
        if line.strip():
            events.append(json.loads(line))
    return events


def train_on_trajectories(ctx) -> dict[str, Any]:
    """The job, in its worker process (torch loads there, never in the server)."""
    from ._trajectory_train import train_trajectories

    return train_trajectories(ctx)
