"""``inline::huggingface`` post-training on the event loop: check the request, read the dataset
through datasetio, submit the training to a worker process, serve the checkpoint it leaves.

Nothing here imports torch; ``_train`` runs in the job's worker process.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import re
import uuid
from pathlib import Path
from typing import Any

from providers.utils.inference.transformers_models import TransformersModelConfig
from stack.apis._content import URL
from stack.apis.models import ModelType
from stack.apis.post_training import (
    AlgorithmConfig,
    Checkpoint,
    DPOConfig,
    ListPostTrainingJobsResponse,
    LoraFinetuningConfig,
    PostTrainingJob,
    PostTrainingJobArtifactsResponse,
    PostTrainingJobLogStream,
    PostTrainingJobProgress,
    PostTrainingJobStatus,
    TrainingConfig,
)
from stack.errors import BadRequestError, ConflictError, NotFoundError, StackError
from stack.jobs import FINAL, Job, JobContext, JobStatus
from stack.registry import ProviderContext

from ._logged import dpo_from_trajectories, sft_from_prompt_logs, sft_from_trajectories
from ._rows import dpo_row, sft_row
from ._trajectory_jobs import TrajectoryJobs
from .config import ATTN_MODULES, TRAINING_DTYPES, HuggingFacePostTrainingConfig

log = logging.getLogger(__name__)

JOB_KIND = "post_training"
PROVIDER_TYPE = "inline::huggingface"
_JOB_UUID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_STATUS = {
    JobStatus.scheduled: PostTrainingJobStatus.scheduled,
    JobStatus.in_progress: PostTrainingJobStatus.in_progress,
    JobStatus.completed: PostTrainingJobStatus.completed,
    JobStatus.failed: PostTrainingJobStatus.failed,
    JobStatus.cancelled: PostTrainingJobStatus.cancelled,
    JobStatus.interrupted: PostTrainingJobStatus.failed,
}
MAX_LOG_PAGE = 1000


class HuggingFacePostTraining(TrajectoryJobs):
    def __init__(self, config: HuggingFacePostTrainingConfig, context: ProviderContext) -> None:
        self.config = config
        self.provider_id = context.provider_id
        self.datasetio = context.deps["datasetio"]
        self.models = context.deps.get("models")  # absent from a stack without inference
        self.jobs = context.jobs
        root = config.checkpoint_root or context.data_dir / "post_training"
        self.root = Path(root).expanduser().resolve()
        self._watchers: set[asyncio.Task] = set()
        if self.jobs is not None:  # POST /v1/jobs/{id}/restart trains an interrupted job again
            self.jobs.on_restart(JOB_KIND, self._restart)

    async def shutdown(self) -> None:
        for task in self._watchers:
            task.cancel()

    # -- routes ----------------------------------------------------------------------------------

    async def supervised_fine_tune(self, job_uuid: str, training_config: TrainingConfig,
                                   hyperparam_search_config: dict[str, Any], logger_config: dict[str, Any],
                                   model: str, checkpoint_dir: str | None = None,
                                   algorithm_config: AlgorithmConfig | None = None) -> PostTrainingJob:
        if algorithm_config is None:
            raise BadRequestError(f"full-rank fine-tuning is not supported by {PROVIDER_TYPE}: give a LoRA "
                                  "algorithm_config", field="algorithm_config")
        if not isinstance(algorithm_config, LoraFinetuningConfig):
            raise BadRequestError(f"{algorithm_config.type} is not supported by {PROVIDER_TYPE}: only LoRA",
                                  field="algorithm_config.type")
        _check_lora(algorithm_config, "algorithm_config")
        return await self._start(job_uuid, "sft", model, "model", training_config, hyperparam_search_config,
                                 checkpoint_dir, lora=algorithm_config,
                                 rows=_sft_rows(training_config.data_config.data_format.value))

    async def preference_optimize(self, job_uuid: str, finetuned_model: str, algorithm_config: DPOConfig,
                                  training_config: TrainingConfig, hyperparam_search_config: dict[str, Any],
                                  logger_config: dict[str, Any]) -> PostTrainingJob:
        return await self._start(job_uuid, "dpo", finetuned_model, "finetuned_model", training_config,
                                 hyperparam_search_config, None, lora=self.config.dpo_lora,
                                 dpo={"beta": algorithm_config.beta, "loss_type": algorithm_config.loss_type.value},
                                 rows=_dpo_rows(training_config.data_config.data_format.value))

    async def get_training_jobs(self) -> ListPostTrainingJobsResponse:
        return ListPostTrainingJobsResponse(data=[PostTrainingJob(job_uuid=j.params["job_uuid"]) for j in await self._jobs()])

    async def get_training_job_status(self, job_uuid: str) -> PostTrainingJobProgress:
        job = await self._job(job_uuid)
        checkpoints = await self._checkpoints(job)
        result = job.result or {}
        return PostTrainingJobProgress(
            job_uuid=job_uuid, status=_STATUS[job.status], progress=job.progress,
            progress_percent=round(job.progress * 100, 1),
            message=job.error or job.message, scheduled_at=job.scheduled_at, started_at=job.started_at,
            completed_at=job.completed_at, checkpoints=checkpoints,
            resources_allocated=result.get("resources_allocated") or {"device": self.config.device},
        )

    async def get_training_job_artifacts(self, job_uuid: str) -> PostTrainingJobArtifactsResponse:
        job = await self._job(job_uuid)
        return PostTrainingJobArtifactsResponse(job_uuid=job_uuid, checkpoints=await self._checkpoints(job))

    async def get_training_job_logs(self, job_uuid: str, offset: int = 0, limit: int = 100) -> PostTrainingJobLogStream:
        if offset < 0:
            raise BadRequestError(f"must be 0 or more, got {offset}", field="offset")
        if not 1 <= limit <= MAX_LOG_PAGE:
            raise BadRequestError(f"must be from 1 to {MAX_LOG_PAGE}, got {limit}", field="limit")
        job = await self._job(job_uuid)
        lines = await self.jobs.store.log_lines(job.job_id, offset, limit + 1)  # one more says whether more exist
        return PostTrainingJobLogStream(job_uuid=job_uuid, log_lines=lines[:limit], next_offset=offset + len(lines[:limit]),
                                        has_more=len(lines) > limit)

    async def cancel_training_job(self, job_uuid: str) -> None:
        await self.jobs.cancel((await self._job(job_uuid)).job_id)

    # -- submitting ------------------------------------------------------------------------------

    async def _start(self, job_uuid: str, kind: str, model: str, model_field: str, training: TrainingConfig,
                     search: dict[str, Any], checkpoint_dir: str | None, *, lora: LoraFinetuningConfig,
                     rows, dpo: dict[str, Any] | None = None) -> PostTrainingJob:
        if self.jobs is None:
            raise BadRequestError(f"{PROVIDER_TYPE} runs outside a stack and has no job runner", field="job_uuid")
        if search:
            raise BadRequestError("hyperparameter search is not supported; send {}", field="hyperparam_search_config")
        job_uuid = job_uuid or f"ft-{uuid.uuid4().hex[:12]}"
        if not _JOB_UUID.match(job_uuid):
            raise BadRequestError("letters, digits, '.', '_' and '-' only (at most 128)", field="job_uuid")
        _check_training(training)
        if any(j.params.get("job_uuid") == job_uuid for j in await self._jobs()):
            raise ConflictError(f"a post-training job {job_uuid!r} exists already; pick another job_uuid")
        base, serve_with = await self._base(model, model_field)
        output = self._output_dir(checkpoint_dir) / job_uuid
        data = training.data_config
        files = {"rows_file": await self._write_rows(output / "data" / "train.jsonl", data.dataset_id,
                                                     "training_config.data_config.dataset_id", rows)}
        if data.validation_dataset_id:
            files["validation_file"] = await self._write_rows(
                output / "data" / "validation.jsonl", data.validation_dataset_id,
                "training_config.data_config.validation_dataset_id", rows)
        params = {
            "job_uuid": job_uuid, "provider_id": self.provider_id, "kind": kind, "model": model,
            "base": base.model_dump(mode="json", exclude_none=True), "serve_with": serve_with,
            "training": training.model_dump(mode="json"), "lora": lora.model_dump(mode="json"), "dpo": dpo,
            "output_dir": str(output), "device": self.config.device, "max_seq_len": self.config.max_seq_len,
            "seed": self.config.seed, **files,
        }
        job_id = await self.jobs.submit(JOB_KIND, train, params=params, mode="process")
        if serve_with is not None:
            self._serve_later(job_id, job_uuid)
        return PostTrainingJob(job_uuid=job_uuid)

    async def _restart(self, job: Job) -> str:
        """Train again from the start with the job's params: the same base, settings and rows
        (written under its output_dir when it was submitted; replicas must share that volume)."""
        from ._trajectory_jobs import train_on_trajectories

        params = job.params
        if params.get("provider_id") != self.provider_id:
            raise BadRequestError(f"job {job.job_id!r} belongs to post-training provider {params.get('provider_id')!r}",
                                  field="job_id")
        data = [params[key] for key in ("rows_file", "validation_file", "data_file") if params.get(key)]
        missing = [path for path in data if not await asyncio.to_thread(Path(path).is_file)]
        if missing:
            raise ConflictError(f"job {job.job_id!r} cannot be restarted here: its training data {missing[0]} is "
                                "gone (another machine's disk?); submit the job again")
        fn = train_on_trajectories if params["kind"].startswith("trajectory_") else train
        job_id = await self.jobs.submit(JOB_KIND, fn, params={k: v for k, v in params.items() if k != "restart_of"},
                                        mode="process")
        if params.get("serve_with") is not None:
            self._serve_later(job_id, params["job_uuid"])
        return job_id

    def _serve_later(self, job_id: str, job_uuid: str) -> None:
        task = asyncio.create_task(self._serve_when_done(job_id), name=f"serve-{job_uuid}")
        self._watchers.add(task)
        task.add_done_callback(self._watchers.discard)

    async def _serve_when_done(self, job_id: str) -> None:
        """Serve the checkpoint as soon as the job completes (status and artifacts requests would, too)."""
        while (job := await self.jobs.store.get(job_id)).status not in FINAL:
            await asyncio.sleep(0.5)  # a training job runs for minutes: no need to poll faster
        if job.status == JobStatus.completed:
            await self._serve(job)

    async def _base(self, model_id: str, field: str) -> tuple[TransformersModelConfig, str | None]:
        """Where the base model's weights are, and the inline::transformers provider to serve checkpoints."""
        providers = self.models.providers if self.models is not None else {}
        serving = [pid for pid, impl in providers.items() if hasattr(impl, "model_entry")]
        if model_id in self.config.models:
            entry, serve_with = self.config.models[model_id], (serving[0] if serving else None)
        elif self.models is None:
            raise BadRequestError(f"unknown model {model_id!r}; trainable: {', '.join(self.config.models) or 'none'}",
                                  field=field)
        else:
            try:
                model = await self.models.get(model_id)
            except NotFoundError:
                known = sorted(self.config.models) + [m.identifier for m in await self.models.list()
                                                       if m.provider_id in serving]
                raise BadRequestError(f"unknown model {model_id!r}; trainable: {', '.join(known) or 'none'}",
                                      field=field) from None
            impl = self.models.providers.get(model.provider_id)
            entry = impl.model_entry(model.provider_resource_id) if hasattr(impl, "model_entry") else None
            if entry is None or model.model_type != ModelType.llm:
                raise BadRequestError(
                    f"model {model_id!r} is served by provider {model.provider_id!r}, whose weights {PROVIDER_TYPE} "
                    "cannot read: train an inline::transformers model, or list the weights under this provider's "
                    "models:", field=field)
            serve_with = model.provider_id
        if (missing := entry.missing()) is not None:
            raise BadRequestError(f"model {model_id!r}: {missing}", field=field)
        return entry, serve_with

    def _output_dir(self, checkpoint_dir: str | None) -> Path:
        if not checkpoint_dir:
            return self.root
        path = (self.root / Path(checkpoint_dir).expanduser()).resolve()
        if not path.is_relative_to(self.root):
            raise BadRequestError(f"must lie inside this provider's checkpoint_root {str(self.root)!r}",
                                  field="checkpoint_dir")
        return path

    async def _write_rows(self, path: Path, dataset_id: str, field: str, convert) -> str:
        """Read the dataset through datasetio, check and convert its rows, write them as JSONL for the worker."""
        rows: list[dict[str, Any]] = []
        token = None
        while len(rows) < self.config.max_rows:
            try:
                page = await self.datasetio.get_rows_paginated(
                    dataset_id=dataset_id, rows_in_page=min(self.config.rows_in_page, self.config.max_rows - len(rows)),
                    page_token=token)
            except NotFoundError as exc:
                raise BadRequestError(exc.message, field=field) from None
            rows += page.rows
            token = page.next_page_token
            if not token or not page.rows:
                break
        if not rows:
            raise BadRequestError(f"dataset {dataset_id!r} has no rows", field=field)
        converted = convert(rows, f"{field} {dataset_id!r}")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(json.dumps(r) + "\n" for r in converted), encoding="utf-8")
        return str(path)

    # -- jobs ------------------------------------------------------------------------------------

    async def _jobs(self) -> list[Job]:
        return [j for j in await self.jobs.store.list(kind=JOB_KIND) if j.params.get("provider_id") == self.provider_id]

    async def _job(self, job_uuid: str) -> Job:
        for job in await self._jobs():
            if job.params.get("job_uuid") == job_uuid:
                return job
        raise NotFoundError("post-training job", job_uuid, [j.params["job_uuid"] for j in await self._jobs()])

    async def _checkpoints(self, job: Job) -> list[Checkpoint]:
        """The finished job's checkpoints; the last is registered as a model first (once)."""
        if job.status != JobStatus.completed:
            return []
        result, params = job.result, job.params
        served = await self._serve(job) if params.get("serve_with") else None
        return [Checkpoint(iters=c["iters"], epoch=c["epoch"], path=URL(uri=Path(c["path"]).as_uri()),
                           identifier=served if c is result["checkpoints"][-1] else None,
                           created_at=job.completed_at, post_training_job_id=params["job_uuid"],
                           training_metrics=c["training_metrics"])
                for c in result["checkpoints"]]

    async def _serve(self, job: Job) -> str | None:
        """Register the last checkpoint with the inline::transformers provider: the base plus the adapter.
        None when it cannot be (e.g. that provider left the run config): the checkpoint is still listed."""
        serve = job.result["serve"]
        try:
            await self.models.get(serve["model_id"])
            return serve["model_id"]
        except NotFoundError:
            pass
        try:
            await self.models.register_model(serve["model_id"], provider_id=job.params["serve_with"],
                                             model_type=ModelType.llm, metadata={"transformers": serve["transformers"]})
        except StackError as exc:
            log.warning("checkpoint of post-training job %r is not served: %s", job.params["job_uuid"], exc)
            return None
        return serve["model_id"]


def train(ctx: JobContext) -> dict[str, Any]:
    """The job, in its worker process (torch and transformers load there, never in the server). Its
    result's ``serve`` is the model id and the inline::transformers ``models:`` entry of the last checkpoint."""
    from . import _train

    result = (_train.supervised_fine_tune if ctx.params["kind"] == "sft" else _train.preference_optimize)(ctx)
    last, base = result["checkpoints"][-1], ctx.params["base"]
    result["serve"] = {"model_id": f"{ctx.params['job_uuid']}-epoch-{last['epoch']}",
                       "transformers": {**base, "adapters": [*base.get("adapters", []), last["path"]]}}
    return result


# -- checks ----------------------------------------------------------------------------------------


def _check_lora(lora: LoraFinetuningConfig, field: str) -> None:
    if lora.quantize_base:
        raise BadRequestError(f"QLoRA (a quantized base) is not supported by {PROVIDER_TYPE}", field=f"{field}.quantize_base")
    if lora.rank < 1:
        raise BadRequestError(f"must be at least 1, got {lora.rank}", field=f"{field}.rank")
    if lora.alpha <= 0:
        raise BadRequestError(f"must be positive, got {lora.alpha}", field=f"{field}.alpha")
    unknown = [m for m in lora.lora_attn_modules if m not in ATTN_MODULES]
    if unknown or not lora.lora_attn_modules:
        raise BadRequestError(f"unknown modules {unknown}; known: {', '.join(ATTN_MODULES)}" if unknown
                              else "give at least one attention module", field=f"{field}.lora_attn_modules")


def _sft_rows(fmt: str):
    """How supervised-fine-tune reads its dataset: dialogs from logs, or rows in the spec's formats."""
    if fmt == "trajectories":
        return sft_from_trajectories
    if fmt == "prompt_logs":
        return sft_from_prompt_logs
    return lambda rows, field: [sft_row(r, fmt, field, i) for i, r in enumerate(rows)]


def _dpo_rows(fmt: str):
    """How preference-optimize reads its dataset: pairs from trajectories, or rows of prompt/chosen/rejected."""
    if fmt == "trajectories":
        return dpo_from_trajectories
    if fmt == "prompt_logs":
        raise BadRequestError("prompt logs give supervised examples only (the logs with positive feedback): use "
                              "them with supervised-fine-tune, or give 'trajectories' or rows of prompt, chosen "
                              "and rejected", field="training_config.data_config.data_format")
    return lambda rows, field: [dpo_row(r, field, i) for i, r in enumerate(rows)]


def _check_training(t: TrainingConfig) -> None:
    def at_least(value: int, minimum: int, field: str) -> None:
        if value < minimum:
            raise BadRequestError(f"must be at least {minimum}, got {value}", field=f"training_config.{field}")

    at_least(t.n_epochs, 1, "n_epochs")
    at_least(t.max_steps_per_epoch, 1, "max_steps_per_epoch")
    at_least(t.gradient_accumulation_steps, 1, "gradient_accumulation_steps")
    at_least(t.max_validation_steps, 0, "max_validation_steps")
    at_least(t.data_config.batch_size, 1, "data_config.batch_size")
    at_least(t.optimizer_config.num_warmup_steps, 0, "optimizer_config.num_warmup_steps")
    opt = t.optimizer_config
    if not (math.isfinite(opt.lr) and opt.lr > 0):
        raise BadRequestError(f"must be a positive number, got {opt.lr}", field="training_config.optimizer_config.lr")
    if not (math.isfinite(opt.weight_decay) and opt.weight_decay >= 0):
        raise BadRequestError(f"must be a non-negative number, got {opt.weight_decay}",
                              field="training_config.optimizer_config.weight_decay")
    if t.dtype not in TRAINING_DTYPES:
        raise BadRequestError(f"{t.dtype!r} is not one of {', '.join(TRAINING_DTYPES)}", field="training_config.dtype")
    if t.data_config.packed:
        raise BadRequestError(f"packed sequences are not supported by {PROVIDER_TYPE}", field="training_config.data_config.packed")
    eff = t.efficiency_config
    for name in ("enable_activation_offloading", "memory_efficient_fsdp_wrap", "fsdp_cpu_offload"):
        if eff is not None and getattr(eff, name):
            raise BadRequestError(f"not supported by {PROVIDER_TYPE} (one device, no FSDP)",
                                  field=f"training_config.efficiency_config.{name}")
