"""W&B Training's training jobs on the trajectories API, trained by the stack's post-training API.

This family owns the ``/v1/preview/training-jobs`` routes because it owns what they name (the
model, its checkpoints and their ``wandb-artifact:///`` names); the training itself is the
post-training API's ``optimize_trajectories`` (its declared dependency), started from the
model's latest checkpoint. When the job ends, its checkpoint becomes step N+1 of the model.
Mixed into ``SqlTrajectories``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from typing import Any

from pydantic import ValidationError

from stack.apis.post_training import GRPOConfig, TrajectorySFTConfig
from stack.apis.trajectories import (
    ExperimentalTrainingConfig,
    SFTTrainingConfig,
    TrainingJob,
    TrainingJobEventPage,
    Trajectory,
    TrajectoryGroup,
)
from stack.errors import BadRequestError, NotFoundError, StackError

log = logging.getLogger(__name__)

#: the post-training request's fields -> this request's
_FIELDS = {"model": "model_id", "algorithm_config": "experimental_config", "trajectory_groups": "trajectory_groups"}
#: a training job takes seconds to minutes: no need to look for its end faster
_POLL_SECONDS = 0.5
_RUNNING = ("scheduled", "in_progress")


def _renamed(exc: BadRequestError, sft: bool) -> BadRequestError:
    """The post-training API's 400 in this request's terms."""
    head, dot, rest = (exc.field or "").partition(".")
    name = {**_FIELDS, "algorithm_config": "config"}.get(head) if sft else _FIELDS.get(head)
    return BadRequestError(exc.reason, field=f"{name}{dot}{rest}" if name else exc.field)


def _sft_groups(data: bytes, url: str) -> list[TrajectoryGroup]:
    """art's SFT file: one ``{"messages": [...], "tools": [...]}`` a line; each a trajectory of one group."""
    trajectories = []
    for number, line in enumerate(data.decode("utf-8", errors="replace").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            trajectories.append(Trajectory(messages_and_choices=row["messages"], tools=row.get("tools"), reward=0.0))
        except (ValueError, KeyError, TypeError) as exc:
            why = exc.errors()[0]["msg"] if isinstance(exc, ValidationError) else f"not a JSON object with messages ({exc})"
            raise BadRequestError(f"line {number} of {url}: {why}", field="training_data_url") from None
    if not trajectories:
        raise BadRequestError(f"{url} has no trajectories", field="training_data_url")
    return [TrajectoryGroup(trajectories=trajectories)]


class TrainingJobs:
    """What ``SqlTrajectories`` serves for training: it holds ``store``, ``post_training``, ``context``."""

    async def create_training_job(self, model_id: str, trajectory_groups: list[TrajectoryGroup],
                                  experimental_config: ExperimentalTrainingConfig | None = None) -> TrainingJob:
        values = experimental_config.model_dump(exclude_none=True) if experimental_config is not None else {}
        return await self._start_training(model_id, "rl", trajectory_groups, GRPOConfig(**values))

    async def create_sft_training_job(self, model_id: str, training_data_url: str,
                                      config: SFTTrainingConfig | None = None) -> TrainingJob:
        model = await self.get_model(model_id)
        if training_data_url.split(":", 1)[0] == "wandb-artifact":
            raise BadRequestError("W&B artifacts are not stored here: give a file or http(s) URL of the JSONL",
                                  field="training_data_url")
        self._trainer()
        fetched = await self.context.fetcher.fetch(training_data_url, field="training_data_url")
        groups = await asyncio.to_thread(_sft_groups, fetched.data, training_data_url)
        config = config or SFTTrainingConfig()
        unknown = sorted(k for k, v in (config.model_extra or {}).items() if v is not None)
        if unknown:
            raise BadRequestError("not supported", field=f"config.{unknown[0]}")
        sft = TrajectorySFTConfig(**{k: v for k, v in config.model_dump().items() if v is not None and k in
                                     TrajectorySFTConfig.model_fields})
        return await self._start_training(model.id, "sft", groups, sft)

    async def list_training_job_events(self, training_job_id: str, after: str | None = None,
                                       limit: int = 100) -> TrainingJobEventPage:
        row = await self.store.training_job(training_job_id)
        if row is None:
            raise NotFoundError("training job", training_job_id)
        page = await self._trainer().get_training_job_events(job_uuid=training_job_id, after=after, limit=limit)
        if any(e.type == "training_ended" for e in page.data):
            await self._record_training_checkpoint(training_job_id)  # the step is listed before art hears "ended"
        return page

    # -- internals ---------------------------------------------------------------------

    def _trainer(self) -> Any:
        if self.post_training is None:
            raise BadRequestError("this stack serves no post_training API to train with (add inline::huggingface)",
                                  field="model_id")
        return self.post_training

    async def _start_training(self, model_id: str, kind: str, groups: list[TrajectoryGroup], algorithm) -> TrainingJob:
        trainer = self._trainer()
        model = await self.get_model(model_id)
        start = await self._served_name(model)  # the latest checkpoint's model, else the base
        job_id = f"tj-{uuid.uuid4().hex[:16]}"
        await self.store.add_training_job(job_id, model.id, kind)
        try:
            await trainer.optimize_trajectories(job_uuid=job_id, model=start, trajectory_groups=groups,
                                                algorithm_config=algorithm)
        except BadRequestError as exc:
            await self.store.delete_training_job(job_id)
            raise _renamed(exc, kind == "sft") from None
        except BaseException:
            await self.store.delete_training_job(job_id)
            raise
        task = asyncio.create_task(self._record_when_done(job_id), name=f"record-{job_id}")
        self._training_watchers.add(task)
        task.add_done_callback(self._training_watchers.discard)
        return TrainingJob(id=job_id)

    async def _record_when_done(self, job_id: str) -> None:
        """Record the checkpoint as soon as the job completes (an events request would, too)."""
        try:
            while (status := await self.post_training.get_training_job_status(job_uuid=job_id)).status.value in _RUNNING:
                await asyncio.sleep(_POLL_SECONDS)
            if status.status.value == "completed":
                await self._record_training_checkpoint(job_id)
        except StackError as exc:  # the model was deleted meanwhile, say
            log.warning("training job %s: checkpoint not recorded: %s", job_id, exc)

    async def _record_training_checkpoint(self, job_id: str) -> None:
        """Once: the finished job's checkpoint as the model's next step, its names pointing at it."""
        async with self._record_lock:
            row = await self.store.training_job(job_id)
            if row is None or row["step"] is not None:
                return
            artifacts = await self.post_training.get_training_job_artifacts(job_uuid=job_id)
            checkpoint = artifacts.checkpoints[-1]
            metrics = {k: float(v) for k, v in (checkpoint.training_metrics or {}).items()
                       if isinstance(v, (int, float)) and not isinstance(v, bool)}
            step = await self.store.latest_step(row["model_id"]) + 1
            await self.record_checkpoint(row["model_id"], step, metrics, served_model=checkpoint.identifier)
            await self.store.set_training_job_step(job_id, step)
