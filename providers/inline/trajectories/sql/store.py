"""Trajectory runs in the SQL store: models, logged groups, metric history, checkpoints.

Every replica sharing the store sees the same runs; a trainer (another process)
records checkpoints with ``add_checkpoint``.
"""

from __future__ import annotations

import secrets
import uuid
from datetime import datetime, timezone
from typing import Any

from stack.apis.trajectories import MetricsRecord, TrainingCheckpoint, TrainingModel
from stack.storage import ColumnType, DuplicateKeyError, SqlStore

T = ColumnType
_TABLES: dict[str, tuple[dict[str, ColumnType], tuple[str, ...]]] = {
    # (entity, project, name) is unique: the key row is inserted first, so two replicas cannot both create it
    "traj_model_keys": ({"key": T.TEXT, "model_id": T.TEXT}, ("key",)),
    "traj_models": ({"id": T.TEXT, "entity": T.TEXT, "project": T.TEXT, "name": T.TEXT, "base_model": T.TEXT,
                     "run_id": T.TEXT, "created_at": T.TIMESTAMP}, ("id",)),
    "traj_groups": ({"model_id": T.TEXT, "log_id": T.TEXT, "idx": T.INTEGER, "split": T.TEXT, "step": T.INTEGER,
                     "grp": T.JSON, "created_at": T.TIMESTAMP}, ("model_id", "log_id", "idx")),
    "traj_metrics": ({"model_id": T.TEXT, "log_id": T.TEXT, "split": T.TEXT, "step": T.INTEGER,
                      "metrics": T.JSON, "created_at": T.TIMESTAMP}, ("model_id", "log_id")),
    "traj_checkpoints": ({"model_id": T.TEXT, "step": T.INTEGER, "id": T.TEXT, "metrics": T.JSON,
                          "served_model": T.TEXT, "created_at": T.TIMESTAMP}, ("model_id", "step")),
    # a training job of a model: its post-training job has the same id; step is set once its checkpoint is recorded
    "traj_training_jobs": ({"id": T.TEXT, "model_id": T.TEXT, "kind": T.TEXT, "step": T.INTEGER,
                            "created_at": T.TIMESTAMP}, ("id",)),
}


def _now() -> datetime:
    return datetime.now(timezone.utc)


def model_key(entity: str, project: str, name: str) -> str:
    return f"{entity}/{project}/{name}"


def _model(row: dict[str, Any]) -> TrainingModel:
    return TrainingModel(**{k: row[k] for k in TrainingModel.model_fields})


class TrajectoryStore:
    def __init__(self, sql: SqlStore) -> None:
        self.sql = sql

    async def create_tables(self) -> None:
        for name, (columns, key) in _TABLES.items():
            await self.sql.create_table(name, columns, key)
        # pages of a step's groups and of the models are read in index order, never sorted whole
        await self.sql.create_index("traj_groups", "by_step", ("model_id", "step", "created_at", "log_id", "idx"))
        await self.sql.create_index("traj_models", "newest", ("created_at",))

    # -- models ------------------------------------------------------------------------

    async def insert_model(self, entity: str, project: str, name: str, base_model: str) -> TrainingModel | None:
        """The new model; None when (entity, project, name) is taken."""
        model_id = f"model-{uuid.uuid4().hex[:16]}"
        try:
            await self.sql.insert("traj_model_keys", {"key": model_key(entity, project, name), "model_id": model_id})
        except DuplicateKeyError:
            return None
        row = {"id": model_id, "entity": entity, "project": project, "name": name, "base_model": base_model,
               "run_id": secrets.token_hex(4), "created_at": _now()}
        await self.sql.insert("traj_models", row)
        return _model(row)

    async def model_by_name(self, entity: str, project: str, name: str) -> TrainingModel | None:
        key = await self.sql.fetch_one("traj_model_keys", {"key": model_key(entity, project, name)})
        return await self.model(key["model_id"]) if key else None

    async def models_page(self, limit: int, offset: int) -> list[TrainingModel]:
        rows = await self.sql.select("traj_models", order_by=[("created_at", "desc"), ("id", "asc")],
                                     limit=limit, offset=offset)
        return [_model(r) for r in rows]

    async def model(self, model_id: str) -> TrainingModel | None:
        row = await self.sql.fetch_one("traj_models", {"id": model_id})
        return _model(row) if row else None

    async def delete_model(self, model: TrainingModel) -> None:
        for table in ("traj_groups", "traj_metrics", "traj_checkpoints", "traj_training_jobs"):
            await self.sql.delete(table, {"model_id": model.id})
        await self.sql.delete("traj_models", {"id": model.id})
        await self.sql.delete("traj_model_keys", {"key": model_key(model.entity, model.project, model.name)})

    # -- logs --------------------------------------------------------------------------

    async def add_log(self, model_id: str, split: str, step: int, groups: list[dict[str, Any]],
                      metrics: dict[str, float]) -> None:
        log_id, now = uuid.uuid4().hex, _now()
        for idx, group in enumerate(groups):
            await self.sql.insert("traj_groups", {"model_id": model_id, "log_id": log_id, "idx": idx, "split": split,
                                                  "step": step, "grp": group, "created_at": now})
        # the metrics row last: a history entry means its groups are all stored
        await self.sql.insert("traj_metrics", {"model_id": model_id, "log_id": log_id, "split": split, "step": step,
                                               "metrics": metrics, "created_at": now})

    async def metrics_history(self, model_id: str, split: str | None) -> list[MetricsRecord]:
        where = {"model_id": model_id} | ({"split": split} if split is not None else {})
        rows = await self.sql.fetch_all("traj_metrics", where, order_by=[("created_at", "asc"), ("log_id", "asc")])
        return [MetricsRecord(split=r["split"], step=r["step"], metrics=r["metrics"], created_at=r["created_at"]) for r in rows]

    async def groups(self, model_id: str, split: str | None) -> list[dict[str, Any]]:
        """Logged groups in log order: rows of split, step and the group as it was sent."""
        where = {"model_id": model_id} | ({"split": split} if split is not None else {})
        order = [("created_at", "asc"), ("log_id", "asc"), ("idx", "asc")]
        return await self.sql.fetch_all("traj_groups", where, order_by=order)

    async def groups_page(self, model_id: str, step: int | None, split: str | None, limit: int,
                          offset: int) -> list[dict[str, Any]]:
        """``limit`` logged groups from ``offset``, in log order, of one step and split when given."""
        where = {"model_id": model_id}
        where |= {"step": step} if step is not None else {}
        where |= {"split": split} if split is not None else {}
        order = [("created_at", "asc"), ("log_id", "asc"), ("idx", "asc")]
        return await self.sql.select("traj_groups", where=where, order_by=order, limit=limit, offset=offset)

    # -- checkpoints -------------------------------------------------------------------

    async def add_checkpoint(self, model_id: str, step: int, metrics: dict[str, float] | None = None,
                             served_model: str | None = None) -> TrainingCheckpoint:
        """Record (or replace) the checkpoint of ``step``; ``served_model`` is the stack
        model that serves it (None: the base model)."""
        row = {"model_id": model_id, "step": step, "id": f"ckpt-{uuid.uuid4().hex[:16]}",
               "metrics": metrics or {}, "served_model": served_model, "created_at": _now()}
        await self.sql.upsert("traj_checkpoints", row, ("model_id", "step"))
        return TrainingCheckpoint(id=row["id"], step=step, metrics=row["metrics"])

    async def checkpoint_rows(self, model_id: str) -> list[dict[str, Any]]:
        """Every checkpoint of the model, by step ascending."""
        return await self.sql.fetch_all("traj_checkpoints", {"model_id": model_id}, order_by=[("step", "asc")])

    async def latest_step(self, model_id: str) -> int:
        row = await self.sql.fetch_one("traj_checkpoints", {"model_id": model_id}, order_by=[("step", "desc")])
        return row["step"] if row else 0

    # -- training jobs -----------------------------------------------------------------

    async def add_training_job(self, job_id: str, model_id: str, kind: str) -> None:
        await self.sql.insert("traj_training_jobs", {"id": job_id, "model_id": model_id, "kind": kind, "step": None,
                                                     "created_at": _now()})

    async def training_job(self, job_id: str) -> dict[str, Any] | None:
        return await self.sql.fetch_one("traj_training_jobs", {"id": job_id})

    async def set_training_job_step(self, job_id: str, step: int) -> None:
        await self.sql.update("traj_training_jobs", {"step": step}, {"id": job_id})

    async def delete_training_job(self, job_id: str) -> None:
        await self.sql.delete("traj_training_jobs", {"id": job_id})

    async def delete_checkpoint(self, model_id: str, step: int) -> bool:
        return await self.sql.delete("traj_checkpoints", {"model_id": model_id, "step": step}) > 0
