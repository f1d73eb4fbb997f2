"""Eval tasks: a dataset paired with the scoring functions that grade it."""

from __future__ import annotations

from typing import Any, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

from ._resource import Resource
from ._webmethod import webmethod


class EvalTask(Resource):
    type: Literal["eval_task"] = "eval_task"
    dataset_id: str
    scoring_functions: list[str]
    metadata: dict[str, Any]

    @property
    def eval_task_id(self) -> str:
        return self.identifier

    @property
    def provider_eval_task_id(self) -> str:
        return self.provider_resource_id


class ListEvalTasksResponse(BaseModel):
    data: list[EvalTask]


class EvalTaskInput(BaseModel):
    """An eval task as listed under ``eval_tasks:`` in a run config."""

    model_config = ConfigDict(extra="forbid")

    eval_task_id: str
    dataset_id: str
    scoring_functions: list[str]
    metadata: dict[str, Any] = Field(default_factory=dict)
    provider_id: str | None = None
    provider_eval_task_id: str | None = None


@runtime_checkable
class EvalTasks(Protocol):
    @webmethod(route="/v1/eval-tasks", method="GET")
    async def list_eval_tasks(self) -> ListEvalTasksResponse: ...

    @webmethod(route="/v1/eval-tasks/{eval_task_id}", method="GET")
    async def get_eval_task(self, eval_task_id: str) -> EvalTask | None: ...

    @webmethod(route="/v1/eval-tasks", method="POST")
    async def register_eval_task(
        self,
        eval_task_id: str,
        dataset_id: str,
        scoring_functions: list[str],
        provider_eval_task_id: str | None = None,
        provider_id: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None: ...


PROTOCOL = EvalTasks
