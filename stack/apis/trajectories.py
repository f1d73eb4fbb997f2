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

from ._paging import Offset, OffsetPage
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


class _CursorPage(BaseModel):
    """A cursor page (OpenAI style): pass ``last_id`` as ``after`` while ``has_more``."""

    object: Literal["list"] = "list"
    first_id: str | None = None
    last_id: str | None = None
    has_more: bool = False


class CheckpointPage(_CursorPage):
    data: list[TrainingCheckpoint]


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


class TrainingModelPage(OffsetPage):
    """Models newest first, ``limit`` from ``offset``; ``has_more`` when more follow."""

    data: list[TrainingModel]


class LoggedGroup(BaseModel):
    """A trajectory group as it was logged: where (split, step, which log call) and the group."""

    split: str
    step: int
    log_id: str
    group_index: int = Field(description="Its place in its log call's trajectory_groups")
    created_at: datetime
    group: dict[str, Any] = Field(description="The TrajectoryGroup as sent (trajectories with their messages)")


class LoggedGroupPage(OffsetPage):
    """Logged groups in log order, ``limit`` from ``offset``; ``has_more`` when more follow."""

    data: list[LoggedGroup]


class ExperimentalTrainingConfig(BaseModel):
    """How a training job learns from its groups: art's ``ExperimentalTrainingConfig``.

    Unset (null) fields take art's defaults. Advantages are each trajectory's reward minus
    its group's mean (divided by the group's standard deviation with ``scale_rewards``).
    """

    model_config = ConfigDict(extra="allow")

    learning_rate: float | None = Field(None, description="Of the LoRA adapter's AdamW steps (default 5e-6)")
    scale_rewards: bool | None = Field(None, description="Divide advantages by the group's reward std (default true)")
    ppo: bool | None = Field(None, description="PPO's clipped objective; else the clipped-IS-weight REINFORCE one")
    epsilon: float | None = Field(None, description="Lower clip of the importance ratio: 1 - epsilon "
                                  "(default 0.2 with ppo, else 1.0)")
    epsilon_high: float | None = Field(None, description="Upper clip: 1 + epsilon_high (default epsilon with ppo, else 4.0)")
    importance_sampling_level: Literal["token", "sequence", "average", "geometric_average"] | None = Field(
        None, description="Ratio per token, per sequence (mean log-ratio), or the arithmetic or geometric mean of both")
    advantage_balance: float | None = Field(None, ge=-1, le=1, description="Above 0 scales negative advantages by "
                                            "1 - balance; below 0 positive ones by 1 + balance (default 0)")
    max_negative_advantage_importance_sampling_weight: float | None = Field(
        None, gt=0, description="Upper bound of the importance ratio")
    mask_prob_ratio: bool | None = Field(None, description="Zero the ratios outside the clip range (default false)")
    kimi_k2_tau: float | None = Field(None, description="Subtract tau times the log-ratio from the advantages")
    precalculate_logprobs: bool | None = Field(
        None, description="Accepted; old log-probs missing from the logged choices are always computed before the "
        "first step")


class SFTTrainingConfig(BaseModel):
    """art's ``SFTTrainingConfig``."""

    model_config = ConfigDict(extra="allow")

    batch_size: int | None = Field(None, ge=1, description="Trajectories a gradient step (default 2)")
    learning_rate: float | list[float] | None = Field(
        None, description="One rate, or one a gradient step (the last repeats); default 1e-4")


class TrainingJob(BaseModel):
    id: str


class TrainingJobEvent(BaseModel):
    """What art's ServerlessBackend polls: ``training_started {num_sequences}``, one
    ``gradient_step`` (its metrics) a step, then ``training_ended`` or ``training_failed {error_message}``."""

    id: str
    type: Literal["training_started", "gradient_step", "training_ended", "training_failed"]
    data: dict[str, Any] = Field(default_factory=dict)


class TrainingJobEventPage(_CursorPage):
    data: list[TrainingJobEvent]


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

    @webmethod(route="/v1/preview/models", method="GET", summary="List models, newest first")
    async def list_training_models(
        self,
        limit: Annotated[int, Field(ge=1, le=100)] = 20,
        offset: Offset = 0,
    ) -> TrainingModelPage: ...

    @webmethod(route="/v1/preview/models/{model_id}", method="GET")
    async def get_model(self, model_id: str) -> TrainingModel: ...

    @webmethod(route="/v1/preview/models/{model_id}", method="DELETE")
    async def delete_model(self, model_id: str) -> None: ...

    @webmethod(route="/v1/preview/models/{model_id}/log", method="POST", request_name="LogRequest")
    async def log(self, model_id: str, split: str, trajectory_groups: list[TrajectoryGroup]) -> LogResponse: ...

    @webmethod(route="/v1/preview/models/{model_id}/metrics", method="GET")
    async def get_metrics(self, model_id: str, split: str | None = None) -> MetricsHistory: ...

    @webmethod(route="/v1/preview/models/{model_id}/trajectories", method="GET",
               summary="The trajectory groups logged at a step, a page at a time")
    async def list_trajectory_groups(
        self,
        model_id: str,
        step: Annotated[int | None, Field(ge=0, le=2**63 - 1)] = None,
        split: str | None = None,
        limit: Annotated[int, Field(ge=1, le=100)] = 20,
        offset: Offset = 0,
    ) -> LoggedGroupPage: ...

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

    @webmethod(route="/v1/preview/training-jobs", method="POST")
    async def create_training_job(
        self,
        model_id: str,
        trajectory_groups: list[TrajectoryGroup],
        experimental_config: ExperimentalTrainingConfig | None = None,
    ) -> TrainingJob: ...

    @webmethod(route="/v1/preview/sft-training-jobs", method="POST")
    async def create_sft_training_job(
        self, model_id: str, training_data_url: str, config: SFTTrainingConfig | None = None
    ) -> TrainingJob: ...

    @webmethod(route="/v1/preview/training-jobs/{training_job_id}/events", method="GET")
    async def list_training_job_events(
        self, training_job_id: str, after: str | None = None, limit: int = 100
    ) -> TrainingJobEventPage: ...

    @webmethod(route="/v1/preview/models/{model_id}/export", method="POST")
    async def export_trajectories(
        self, model_id: str, dataset_id: str, split: str | None = None, provider_id: str | None = None
    ) -> ExportTrajectoriesResponse: ...


PROTOCOL = Trajectories
