"""Post-training: supervised fine-tuning and preference optimization jobs."""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Annotated, Any, Literal, Protocol, Union, runtime_checkable

from pydantic import BaseModel, Field

from ._content import URL
from ._webmethod import webmethod
from .trajectories import ExperimentalTrainingConfig, TrainingJobEventPage, TrajectoryGroup


class OptimizerType(str, Enum):
    adam = "adam"
    adamw = "adamw"
    sgd = "sgd"


class DatasetFormat(str, Enum):
    instruct = "instruct"
    dialog = "dialog"


class LoggedDataFormat(str, Enum):
    """polystack's formats besides the spec's: rows of logs exported to a dataset, which the trainer
    turns into examples (docs/apis/post-training.md)."""

    trajectories = "trajectories"
    prompt_logs = "prompt_logs"


class DataConfig(BaseModel):
    dataset_id: str
    batch_size: int
    shuffle: bool
    data_format: DatasetFormat | LoggedDataFormat
    validation_dataset_id: str | None = None
    packed: bool = False
    train_on_input: bool = False


class OptimizerConfig(BaseModel):
    optimizer_type: OptimizerType
    lr: float
    weight_decay: float
    num_warmup_steps: int


class EfficiencyConfig(BaseModel):
    enable_activation_checkpointing: bool = False
    enable_activation_offloading: bool = False
    memory_efficient_fsdp_wrap: bool = False
    fsdp_cpu_offload: bool = False


class TrainingConfig(BaseModel):
    n_epochs: int
    max_steps_per_epoch: int
    gradient_accumulation_steps: int
    max_validation_steps: int
    data_config: DataConfig
    optimizer_config: OptimizerConfig
    efficiency_config: EfficiencyConfig | None = None
    dtype: str = "bf16"


class LoraFinetuningConfig(BaseModel):
    type: Literal["LoRA"] = "LoRA"
    lora_attn_modules: list[str]
    apply_lora_to_mlp: bool
    apply_lora_to_output: bool
    rank: int
    alpha: int
    use_dora: bool = False
    quantize_base: bool = False


class QATFinetuningConfig(BaseModel):
    type: Literal["QAT"] = "QAT"
    quantizer_name: str
    group_size: int


AlgorithmConfig = Annotated[
    Union[LoraFinetuningConfig, QATFinetuningConfig], Field(discriminator="type")
]


class DPOLossType(str, Enum):
    sigmoid = "sigmoid"
    hinge = "hinge"
    ipo = "ipo"


class DPOAlignmentConfig(BaseModel):
    """llama-stack 0.1.0's DPO settings, as the spec has them (no provider used them)."""

    reward_scale: float
    reward_clip: float
    epsilon: float
    gamma: float


class DPOConfig(BaseModel):
    """What ``preference-optimize`` takes as ``algorithm_config``: the spec's
    ``DPOAlignmentConfig`` (its fields accepted and ignored, and optional) plus
    ``beta`` and ``loss_type``, as later llama-stack has them."""

    reward_scale: float | None = None
    reward_clip: float | None = None
    epsilon: float | None = None
    gamma: float | None = None
    beta: float = Field(0.1, gt=0, description="How far the policy may move from the reference model")
    loss_type: DPOLossType = DPOLossType.sigmoid


class GRPOConfig(ExperimentalTrainingConfig):
    """Group-relative policy optimization: one gradient step a trainable group (one whose
    rewards differ), on the trajectories' assistant tokens, weighted by their advantage."""

    type: Literal["grpo"] = "grpo"


class TrajectorySFTConfig(BaseModel):
    """Supervised fine-tuning on the trajectories' assistant messages (their rewards are ignored)."""

    type: Literal["sft"] = "sft"
    learning_rate: float | list[float] = Field(1e-4, description="One rate, or one a gradient step (the last repeats)")
    batch_size: int = Field(2, ge=1, description="Trajectories a gradient step")


TrajectoryAlgorithmConfig = Annotated[Union[GRPOConfig, TrajectorySFTConfig], Field(discriminator="type")]


class Checkpoint(BaseModel):
    """Checkpoint created during training runs.

    The spec leaves it free-form; these are llama-stack 0.1.x's fields.
    """

    iters: int
    path: URL
    epoch: int
    identifier: str | None = Field(None, description="The model id that serves this checkpoint, when served")
    created_at: datetime | None = None
    post_training_job_id: str | None = None
    training_metrics: dict[str, Any] | None = Field(None, description="e.g. train_loss of the epoch")


class PostTrainingJob(BaseModel):
    job_uuid: str


class ListPostTrainingJobsResponse(BaseModel):
    data: list[PostTrainingJob]


class PostTrainingJobStatus(str, Enum):
    """The spec's four job states and ``cancelled`` (as later llama-stack has)."""

    completed = "completed"
    in_progress = "in_progress"
    failed = "failed"
    scheduled = "scheduled"
    cancelled = "cancelled"


class PostTrainingJobStatusResponse(BaseModel):
    """Status of a finetuning job."""

    job_uuid: str
    status: PostTrainingJobStatus
    scheduled_at: datetime | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None
    resources_allocated: dict[str, Any] | None = None
    checkpoints: list[Checkpoint]


class PostTrainingJobProgress(PostTrainingJobStatusResponse):
    """The spec's status with the job's progress, as polystack answers it."""

    progress: float | None = Field(None, description="From 0 to 1")
    progress_percent: float | None = Field(None, description="The progress in percent (0 to 100, one decimal)")
    message: str | None = Field(None, description="The latest progress message, or why the job failed")


class PostTrainingJobLogStream(BaseModel):
    """A page of a job's training log (llama-stack 0.1.0's ``PostTrainingJobLogStream`` plus paging)."""

    job_uuid: str
    log_lines: list[str] = Field(description="One line a step: step, epoch, loss, learning rate, seconds")
    next_offset: int = Field(description="The offset of the line after this page: pass it to read on")
    has_more: bool = Field(description="Whether lines after this page exist now (a running job adds more)")


class PostTrainingJobArtifactsResponse(BaseModel):
    """Artifacts of a finetuning job."""

    job_uuid: str
    checkpoints: list[Checkpoint]


@runtime_checkable
class PostTraining(Protocol):
    @webmethod(route="/v1/post-training/supervised-fine-tune", method="POST")
    async def supervised_fine_tune(
        self,
        job_uuid: str,
        training_config: TrainingConfig,
        hyperparam_search_config: dict[str, Any],
        logger_config: dict[str, Any],
        model: str,
        checkpoint_dir: str | None = None,
        algorithm_config: AlgorithmConfig | None = None,
    ) -> PostTrainingJob: ...

    @webmethod(route="/v1/post-training/preference-optimize", method="POST")
    async def preference_optimize(
        self,
        job_uuid: str,
        finetuned_model: str,
        algorithm_config: DPOConfig,
        training_config: TrainingConfig,
        hyperparam_search_config: dict[str, Any],
        logger_config: dict[str, Any],
    ) -> PostTrainingJob: ...

    @webmethod(route="/v1/post-training/optimize-trajectories", method="POST")
    async def optimize_trajectories(
        self,
        job_uuid: str,
        model: str,
        trajectory_groups: list[TrajectoryGroup],
        algorithm_config: TrajectoryAlgorithmConfig,
        lora_config: LoraFinetuningConfig | None = None,
    ) -> PostTrainingJob: ...

    @webmethod(route="/v1/post-training/job/events", method="GET")
    async def get_training_job_events(
        self, job_uuid: str, after: str | None = None, limit: int = 100
    ) -> TrainingJobEventPage: ...

    @webmethod(route="/v1/post-training/jobs", method="GET")
    async def get_training_jobs(self) -> ListPostTrainingJobsResponse: ...

    @webmethod(route="/v1/post-training/job/status", method="GET")
    async def get_training_job_status(self, job_uuid: str) -> PostTrainingJobProgress | None: ...

    @webmethod(route="/v1/post-training/job/logs", method="GET")
    async def get_training_job_logs(
        self, job_uuid: str, offset: int = 0, limit: int = 100
    ) -> PostTrainingJobLogStream: ...

    @webmethod(route="/v1/post-training/job/cancel", method="POST")
    async def cancel_training_job(self, job_uuid: str) -> None: ...

    @webmethod(route="/v1/post-training/job/artifacts", method="GET")
    async def get_training_job_artifacts(
        self, job_uuid: str
    ) -> PostTrainingJobArtifactsResponse | None: ...


PROTOCOL = PostTraining
