"""Scoring: run scoring functions over rows given inline or over a registered dataset."""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from pydantic import BaseModel

from ._webmethod import webmethod
from .scoring_functions import ScoringFnParams


class ScoringResult(BaseModel):
    """Per-row scores of one scoring function and their aggregates."""

    score_rows: list[dict[str, Any]]
    aggregated_results: dict[str, Any]


class ScoreResponse(BaseModel):
    results: dict[str, ScoringResult]


class ScoreBatchResponse(BaseModel):
    dataset_id: str | None = None
    results: dict[str, ScoringResult]


@runtime_checkable
class Scoring(Protocol):
    @webmethod(route="/v1/scoring/score-batch", method="POST")
    async def score_batch(
        self,
        dataset_id: str,
        scoring_functions: dict[str, ScoringFnParams | None],
        save_results_dataset: bool,
    ) -> ScoreBatchResponse: ...

    @webmethod(route="/v1/scoring/score", method="POST")
    async def score(
        self,
        input_rows: list[dict[str, Any]],
        scoring_functions: dict[str, ScoringFnParams | None],
    ) -> ScoreResponse: ...


PROTOCOL = Scoring
