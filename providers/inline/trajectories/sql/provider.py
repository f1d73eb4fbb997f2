"""W&B Training's trajectory logs on the stack's SQL store.

A model is a named run on a base model the stack serves. Creating one
registers ``wandb-artifact:///entity/project/name`` in the models table as an
alias of the base model, so ``/v1/chat/completions`` serves it; a recorded
checkpoint adds ``...:stepN`` (and moves the plain name to it).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from providers.utils.datasetio.export import export_to_dataset
from stack.apis.models import Model, ModelType
from stack.apis.trajectories import (
    CheckpointPage,
    DeleteCheckpointsResponse,
    ExportTrajectoriesResponse,
    LoggedGroup,
    LoggedGroupPage,
    LogResponse,
    MetricsHistory,
    TrainingCheckpoint,
    TrainingModel,
    TrainingModelPage,
    TrajectoryGroup,
)
from stack.errors import BadRequestError, ConflictError, NotFoundError
from stack.registry import ProviderContext
from stack.storage import SqliteStoreConfig, sqlstore_from_config

from .config import SqlTrajectoriesConfig
from .metrics import compute_metrics
from .store import TrajectoryStore
from .training_jobs import TrainingJobs

ARTIFACT_SCHEME = "wandb-artifact:///"
MAX_CHECKPOINT_PAGE = 100
MAX_PAGE = 100  # models and trajectory groups a page
#: trajectories above which metrics and serialisation run in a thread, off the event loop
_THREAD_ABOVE = 256

EXPORT_SCHEMA = {
    "model_id": {"type": "string"}, "split": {"type": "string"}, "step": {"type": "number"},
    "group_index": {"type": "number"}, "group_id": {"type": "string"}, "trajectory_index": {"type": "number"}, "reward": {"type": "number"},
    "chat_completion_input": {"type": "chat_completion_input"}, "metrics": {"type": "json"},
    "metadata": {"type": "json"}, "trajectory": {"type": "json"},
}


def artifact_name(model: TrainingModel, step: int | None = None) -> str:
    """The name ``/v1/chat/completions`` knows the model (or one checkpoint of it) by."""
    name = f"{ARTIFACT_SCHEME}{model.entity}/{model.project}/{model.name}"
    return name if step is None else f"{name}:step{step}"


def _check_name_part(field: str, value: str) -> str:
    if not value or "/" in value or ":" in value or value != value.strip():
        raise BadRequestError(f"must be a non-empty name without '/', ':' or surrounding spaces, got {value!r}", field=field)
    return value


def _prepare_log(split: str, groups: list[TrajectoryGroup]) -> tuple[dict[str, float], list[dict[str, Any]]]:
    return compute_metrics(split, groups), [g.model_dump(mode="json", exclude_unset=True) for g in groups]


def _check_page(limit: int, offset: int) -> None:
    if not 1 <= limit <= MAX_PAGE:
        raise BadRequestError(f"must be from 1 to {MAX_PAGE}, got {limit}", field="limit")
    if offset < 0:
        raise BadRequestError(f"must be 0 or more, got {offset}", field="offset")


def _plain_messages(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Messages and choices as chat messages: a choice becomes its assistant message."""
    return [item["message"] if "finish_reason" in item and "message" in item else item for item in items]


class SqlTrajectories(TrainingJobs):
    def __init__(self, config: SqlTrajectoriesConfig, context: ProviderContext) -> None:
        self.config = config
        self.context = context
        self.models = context.deps["models"]
        self.post_training = context.deps.get("post_training")  # trains the training jobs, when served
        self.store: TrajectoryStore | None = None
        self._training_watchers: set[asyncio.Task] = set()
        self._record_lock = asyncio.Lock()

    async def initialize(self) -> None:
        sql = await sqlstore_from_config(
            self.config.store or SqliteStoreConfig(), default_path=self.context.data_dir / "trajectories.db"
        )
        self.store = TrajectoryStore(sql)
        await self.store.create_tables()

    async def shutdown(self) -> None:
        for task in self._training_watchers:
            task.cancel()
        if self.store is not None:
            await self.store.sql.close()
            self.store = None

    # -- models ------------------------------------------------------------------------

    async def create_model(self, base_model: str, entity: str | None = None, project: str | None = None,
                           name: str | None = None, return_existing: bool = False) -> TrainingModel:
        entity = _check_name_part("entity", entity if entity is not None else self.config.default_entity)
        if project is None:
            raise BadRequestError("required", field="project")
        if name is None:
            raise BadRequestError("required", field="name")
        _check_name_part("project", project)
        _check_name_part("name", name)
        if not base_model.strip():
            raise BadRequestError("must name a model", field="base_model")
        created = await self.store.insert_model(entity, project, name, base_model)
        if created is None:
            existing = await self.store.model_by_name(entity, project, name)
            if existing is None:  # deleted meanwhile by another request
                return await self.create_model(base_model, entity, project, name, return_existing)
            if not return_existing:
                raise ConflictError(f"model {entity}/{project}/{name} exists (id {existing.id!r}); "
                                    "pass return_existing to get it")
            if existing.base_model != base_model:
                raise ConflictError(f"model {entity}/{project}/{name} exists on base model {existing.base_model!r}, "
                                    f"not {base_model!r}")
            await self._sync_names(existing)  # checkpoints another process recorded get their names here
            return existing
        await self._alias(artifact_name(created), base_model)
        return created

    async def list_training_models(self, limit: int = 20, offset: int = 0) -> TrainingModelPage:
        _check_page(limit, offset)
        models = await self.store.models_page(limit + 1, offset)  # one more: is there a next page
        return TrainingModelPage(data=models[:limit], has_more=len(models) > limit)

    async def get_model(self, model_id: str) -> TrainingModel:
        model = await self.store.model(model_id)
        if model is None:
            raise NotFoundError("Model", model_id, message=f"no trajectories model {model_id!r}")
        return model

    async def delete_model(self, model_id: str) -> None:
        model = await self.get_model(model_id)
        names = [artifact_name(model)] + [artifact_name(model, r["step"]) for r in await self.store.checkpoint_rows(model.id)]
        await self.store.delete_model(model)
        for alias in names:
            await self._unalias(alias)

    # -- logs --------------------------------------------------------------------------

    async def log(self, model_id: str, split: str, trajectory_groups: list[TrajectoryGroup]) -> LogResponse:
        model = await self.get_model(model_id)
        if not split.strip() or "/" in split:
            raise BadRequestError(f"must be a non-empty name without '/', got {split!r}", field="split")
        size = sum(len(g.trajectories) for g in trajectory_groups)
        if size > _THREAD_ABOVE:
            metrics, rows = await asyncio.to_thread(_prepare_log, split, trajectory_groups)
        else:
            metrics, rows = _prepare_log(split, trajectory_groups)
        step = await self.store.latest_step(model.id)
        await self.store.add_log(model.id, split, step, rows, metrics)
        return LogResponse(split=split, step=step, metrics=metrics)

    async def get_metrics(self, model_id: str, split: str | None = None) -> MetricsHistory:
        model = await self.get_model(model_id)
        return MetricsHistory(data=await self.store.metrics_history(model.id, split))

    async def list_trajectory_groups(self, model_id: str, step: int | None = None, split: str | None = None,
                                     limit: int = 20, offset: int = 0) -> LoggedGroupPage:
        model = await self.get_model(model_id)
        _check_page(limit, offset)
        rows = await self.store.groups_page(model.id, step, split, limit + 1, offset)
        return LoggedGroupPage(data=[
            LoggedGroup(split=r["split"], step=r["step"], log_id=r["log_id"], group_index=r["idx"],
                        created_at=r["created_at"], group=r["grp"]) for r in rows[:limit]
        ], has_more=len(rows) > limit)

    # -- checkpoints -------------------------------------------------------------------

    async def record_checkpoint(self, model_id: str, step: int, metrics: dict[str, float] | None = None,
                                served_model: str | None = None) -> TrainingCheckpoint:
        """For a trainer: record the checkpoint of ``step``, served by the stack model
        ``served_model`` (None: the base model), and point the model's names at it."""
        model = await self.get_model(model_id)
        if step < 0:
            raise BadRequestError(f"must be 0 or more, got {step}", field="step")
        checkpoint = await self.store.add_checkpoint(model.id, step, metrics, served_model)
        target = served_model or model.base_model
        await self._alias(artifact_name(model, step), target)
        await self._alias(artifact_name(model), await self._served_name(model))
        return checkpoint

    async def list_checkpoints(self, model_id: str, after: str | None = None, limit: int = 20,
                               order: str = "desc") -> CheckpointPage:
        model = await self.get_model(model_id)
        if not 1 <= limit <= MAX_CHECKPOINT_PAGE:
            raise BadRequestError(f"must be from 1 to {MAX_CHECKPOINT_PAGE}, got {limit}", field="limit")
        rows = await self.store.checkpoint_rows(model.id)
        if order == "desc":
            rows.reverse()
        if after is not None:
            ids = [r["id"] for r in rows]
            if after not in ids:
                raise BadRequestError(f"no checkpoint {after!r} of model {model.id!r}", field="after")
            rows = rows[ids.index(after) + 1:]
        page = [TrainingCheckpoint(id=r["id"], step=r["step"], metrics=r["metrics"]) for r in rows[:limit]]
        return CheckpointPage(data=page, first_id=page[0].id if page else None, last_id=page[-1].id if page else None,
                              has_more=len(rows) > limit)

    async def delete_checkpoints(self, model_id: str, steps: list[int]) -> DeleteCheckpointsResponse:
        model = await self.get_model(model_id)
        deleted, missing = 0, []
        for step in dict.fromkeys(steps):
            if await self.store.delete_checkpoint(model.id, step):
                deleted += 1
                await self._unalias(artifact_name(model, step))
            else:
                missing.append(step)
        if deleted:
            await self._alias(artifact_name(model), await self._served_name(model))
        return DeleteCheckpointsResponse(deleted_count=deleted, not_found_steps=missing)

    # -- export ------------------------------------------------------------------------

    async def export_trajectories(self, model_id: str, dataset_id: str, split: str | None = None,
                                  provider_id: str | None = None) -> ExportTrajectoriesResponse:
        """Append the model's logged trajectories (one row each) to a dataset, registering it when new."""
        model = await self.get_model(model_id)
        rows = []
        for record in await self.store.groups(model.id, split):
            for index, trajectory in enumerate(record["grp"].get("trajectories", [])):
                rows.append({
                    "model_id": model.id, "split": record["split"], "step": record["step"],
                    "group_index": record["idx"], "group_id": f"{record['log_id']}:{record['idx']}",
                    "trajectory_index": index, "reward": trajectory["reward"],
                    "chat_completion_input": json.dumps(_plain_messages(trajectory["messages_and_choices"])),
                    "metrics": trajectory.get("metrics", {}), "metadata": trajectory.get("metadata", {}),
                    "trajectory": trajectory,
                })
        await export_to_dataset(self.context.deps, dataset_id, EXPORT_SCHEMA, rows,
                                {"source": "trajectories", "model_id": model.id}, provider_id)
        return ExportTrajectoriesResponse(dataset_id=dataset_id, rows=len(rows))

    # -- wandb-artifact:/// names in the models table ----------------------------------

    async def _served_name(self, model: TrainingModel) -> str:
        """The stack model the plain name serves: the latest checkpoint's, else the base model."""
        rows = await self.store.checkpoint_rows(model.id)
        return (rows[-1]["served_model"] or model.base_model) if rows else model.base_model

    async def _sync_names(self, model: TrainingModel) -> None:
        """Every checkpoint's ``:stepN`` name, and the plain name on the latest."""
        for row in await self.store.checkpoint_rows(model.id):
            await self._alias(artifact_name(model, row["step"]), row["served_model"] or model.base_model)
        await self._alias(artifact_name(model), await self._served_name(model))

    async def _alias(self, alias: str, target: str) -> None:
        """Register ``alias`` as the stack model ``target`` (when the stack serves it)."""
        try:
            base: Model = await self.models.get_model(target)
        except NotFoundError:
            return  # logging works without serving the base model; chat then answers 404 naming the models
        if alias == base.identifier:
            return
        settings = {"model_id": alias, "provider_model_id": base.provider_resource_id, "provider_id": base.provider_id,
                    "metadata": base.metadata, "model_type": ModelType.llm}
        try:
            await self.models.register_model(**settings)
        except ConflictError:  # it served an earlier checkpoint
            await self._unalias(alias)
            await self.models.register_model(**settings)

    async def _unalias(self, alias: str) -> None:
        try:
            await self.models.unregister_model(alias)
        except NotFoundError:
            pass
