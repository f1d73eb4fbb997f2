"""Eval: run a model or an agent over an eval task's rows and score the outputs."""

from __future__ import annotations

from typing import Annotated, Any, Literal, Protocol, Union, runtime_checkable

from pydantic import BaseModel, Field

from ._agents_types import AgentConfig
from ._jobs import Job, JobStatus
from ._paging import MAX_OFFSET
from ._webmethod import webmethod
from .inference import SamplingParams, SystemMessage
from .scoring import ScoringResult
from .scoring_functions import ScoringFnParams


class ModelCandidate(BaseModel):
    """Evaluate a model directly."""

    type: Literal["model"] = "model"
    model: str
    sampling_params: SamplingParams
    system_message: SystemMessage | None = None


class AgentCandidate(BaseModel):
    """Evaluate an agent built from this config."""

    type: Literal["agent"] = "agent"
    config: AgentConfig


EvalCandidate = Annotated[Union[ModelCandidate, AgentCandidate], Field(discriminator="type")]


class BenchmarkEvalTaskConfig(BaseModel):
    """Run a benchmark with the scoring functions it was registered with."""

    type: Literal["benchmark"] = "benchmark"
    eval_candidate: EvalCandidate
    num_examples: int | None = Field(default=None, description="Rows to use; all when unset")


class AppEvalTaskConfig(BaseModel):
    """Run an app eval with per-scoring-function parameters."""

    type: Literal["app"] = "app"
    eval_candidate: EvalCandidate
    # Required in the spec; most evals override nothing, so absent reads as {}.
    scoring_params: dict[str, ScoringFnParams] = Field(default_factory=dict)
    num_examples: int | None = Field(default=None, description="Rows to use; all when unset")


EvalTaskConfig = Annotated[
    Union[BenchmarkEvalTaskConfig, AppEvalTaskConfig], Field(discriminator="type")
]


class EvaluateResponse(BaseModel):
    """One generation per input row, and the scores per scoring function."""

    generations: list[dict[str, Any]]
    scores: dict[str, ScoringResult]


@runtime_checkable
class Eval(Protocol):
    @webmethod(route="/v1/eval/tasks/{task_id}/jobs", method="POST")
    async def run_eval(self, task_id: str, task_config: EvalTaskConfig) -> Job: ...

    @webmethod(route="/v1/eval/tasks/{task_id}/evaluations", method="POST")
    async def evaluate_rows(
        self,
        task_id: str,
        input_rows: list[dict[str, Any]],
        scoring_functions: list[str],
        task_config: EvalTaskConfig,
    ) -> EvaluateResponse: ...

    @webmethod(route="/v1/eval/tasks/{task_id}/jobs/{job_id}", method="GET")
    async def job_status(self, task_id: str, job_id: str) -> JobStatus | None: ...

    @webmethod(route="/v1/eval/tasks/{task_id}/jobs/{job_id}", method="DELETE")
    async def job_cancel(self, task_id: str, job_id: str) -> None: ...

    @webmethod(route="/v1/eval/tasks/{task_id}/jobs/{job_id}/result", method="GET")
    async def job_result(
        self,
        job_id: str,
        task_id: str,
        limit: Annotated[int | None, Field(ge=1, description="polystack: at most this many rows of "
                                           "generations and score_rows (aggregated_results stay whole)")] = None,
        offset: Annotated[int, Field(ge=0, le=MAX_OFFSET, description="polystack: rows skipped first")] = 0,
    ) -> EvaluateResponse: ...


PROTOCOL = Eval
