"""Trajectories: W&B Training's models, trajectory logs, metrics and checkpoints.

The routes ``openpipe-art``'s ``art.serverless.client.Client`` calls under
``/v1/preview/models`` (shared/spec/wandb-training-log.txt for the log).
A model here is a named training run (entity/project/name) on a base model
the stack serves; ``/v1/chat/completions`` reaches it as
``wandb-artifact:///entity/project/name[:stepN]``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal, Protocol, Union, runtime_checkable

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Strict,
    StrictBool,
    StrictInt,
    StrictStr,
    Tag,
)

from ._webmethod import webmethod
from .openai import OpenAIChatTool, OpenAIChoiceLogprobs, OpenAIMessage, OpenAIToolCall

#: a finite number (JSON allows no NaN; Python's json writes it anyway)
FiniteFloat = Annotated[float, Strict(), Field(allow_inf_nan=False)]
MetricValue = Union[StrictBool, StrictInt, FiniteFloat]
MetadataValue = Union[StrictBool, StrictInt, FiniteFloat, StrictStr, None]


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow", protected_namespaces=())


class CustomToolCall(_Open):
    id: str
    type: Literal["custom"]
    custom: dict[str, Any]


ChoiceToolCall = Annotated[Union[OpenAIToolCall, CustomToolCall], Field(discriminator="type")]


class ChoiceMessage(_Open):
    """What the model said in a choice (OpenAI's ``ChatCompletionMessage``)."""

    role: Literal["assistant"] = "assistant"
    content: str | None = None
    refusal: str | None = None
    tool_calls: list[ChoiceToolCall] | None = None


class TrajectoryChoice(_Open):
    """A choice the model generated (OpenAI's ``Choice``): the trainable part of a trajectory."""

    finish_reason: Literal["stop", "length", "tool_calls", "content_filter", "function_call"]
    index: int
    message: ChoiceMessage
    logprobs: OpenAIChoiceLogprobs | None = None


def _message_or_choice(value: Any) -> str:
    has_role = "role" in value if isinstance(value, dict) else hasattr(value, "role") and not hasattr(value, "finish_reason")
    return "message" if has_role else "choice"


MessageOrChoice = Annotated[
    Union[Annotated[OpenAIMessage, Tag("message")], Annotated[TrajectoryChoice, Tag("choice")]],
    Discriminator(_message_or_choice),
]


class History(BaseModel):
    """Another conversation of the same trajectory (a sub-agent's, say)."""

    messages_and_choices: list[MessageOrChoice]
    tools: list[OpenAIChatTool] | None = None


class Trajectory(BaseModel):
    """One rollout: its messages and choices, its reward and what was measured."""

    messages_and_choices: list[MessageOrChoice]
    tools: list[OpenAIChatTool] | None = None
    additional_histories: list[History] = Field(default_factory=list)
    reward: FiniteFloat
    initial_policy_version: int | None = None
    final_policy_version: int | None = None
    metrics: dict[str, MetricValue] = Field(default_factory=dict)
    auto_metrics: dict[str, MetricValue] = Field(default_factory=dict)
    metadata: dict[str, MetadataValue] = Field(default_factory=dict)
    logs: list[str] = Field(default_factory=list)
    start_time: datetime | None = None


class TrajectoryException(BaseModel):
    """A rollout that raised instead of returning a trajectory (art's ``PydanticException``)."""

    type: str
    message: str
    traceback: str = ""


class TrajectoryGroup(BaseModel):
    """Rollouts of one scenario, compared with each other for training."""

    trajectories: list[Trajectory]
    exceptions: list[TrajectoryException] = Field(default_factory=list)
    metadata: dict[str, MetadataValue] = Field(default_factory=dict)
    metrics: dict[str, MetricValue] = Field(default_factory=dict)
    logs: list[str] = Field(default_factory=list)


class TrainingModel(BaseModel):
    """A trainable model: a named run on a base model (art's ``Model``)."""

    id: str
    entity: str
    project: str
    name: str
    base_model: str
    run_id: str | None = None


class LogResponse(BaseModel):
    """W&B answers ``{}``; this adds what was computed: ``{split}/{name}`` metrics and the step."""

    split: str
    step: int
    metrics: dict[str, float]


class TrainingCheckpoint(BaseModel):
    id: str
    step: int
    metrics: dict[str, float] = Field(default_factory=dict)


class CheckpointPage(BaseModel):
    """A cursor page (OpenAI style): pass ``last_id`` as ``after`` while ``has_more``."""

    object: Literal["list"] = "list"
    data: list[TrainingCheckpoint]
    first_id: str | None = None
    last_id: str | None = None
    has_more: bool = False


class DeleteCheckpointsResponse(BaseModel):
    deleted_count: int
    not_found_steps: list[int]


class MetricsRecord(BaseModel):
    """The metrics one log call computed."""

    split: str
    step: int
    metrics: dict[str, float]
    created_at: datetime


class MetricsHistory(BaseModel):
    object: Literal["list"] = "list"
    data: list[MetricsRecord]


class ExportTrajectoriesResponse(BaseModel):
    dataset_id: str
    rows: int


@runtime_checkable
class Trajectories(Protocol):
    @webmethod(route="/v1/preview/models", method="POST")
    async def create_model(
        self,
        base_model: str,
        entity: str | None = None,
        project: str | None = None,
        name: str | None = None,
        return_existing: bool = False,
    ) -> TrainingModel: ...

    @webmethod(route="/v1/preview/models/{model_id}", method="GET")
    async def get_model(self, model_id: str) -> TrainingModel: ...

    @webmethod(route="/v1/preview/models/{model_id}", method="DELETE")
    async def delete_model(self, model_id: str) -> None: ...

    @webmethod(route="/v1/preview/models/{model_id}/log", method="POST", request_name="LogRequest")
    async def log(self, model_id: str, split: str, trajectory_groups: list[TrajectoryGroup]) -> LogResponse: ...

    @webmethod(route="/v1/preview/models/{model_id}/metrics", method="GET")
    async def get_metrics(self, model_id: str, split: str | None = None) -> MetricsHistory: ...

    @webmethod(route="/v1/preview/models/{model_id}/checkpoints", method="GET")
    async def list_checkpoints(
        self,
        model_id: str,
        after: str | None = None,
        limit: int = 20,
        order: Literal["asc", "desc"] = "desc",
    ) -> CheckpointPage: ...

    @webmethod(route="/v1/preview/models/{model_id}/checkpoints", method="DELETE", delete_body=True,
               request_name="DeleteCheckpointsRequest")
    async def delete_checkpoints(self, model_id: str, steps: list[int]) -> DeleteCheckpointsResponse: ...

    @webmethod(route="/v1/preview/models/{model_id}/export", method="POST")
    async def export_trajectories(
        self, model_id: str, dataset_id: str, split: str | None = None, provider_id: str | None = None
    ) -> ExportTrajectoriesResponse: ...


PROTOCOL = Trajectories
