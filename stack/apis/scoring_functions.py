"""Scoring functions: the registry of scorers (exact match, regex, LLM as judge, ...)."""

from __future__ import annotations

from enum import Enum
from typing import Annotated, Any, Literal, Protocol, Union, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

from ._resource import Resource
from ._types import ParamType
from ._webmethod import webmethod


class AggregationFunctionType(str, Enum):
    average = "average"
    median = "median"
    categorical_count = "categorical_count"
    accuracy = "accuracy"


class LLMAsJudgeScoringFnParams(BaseModel):
    type: Literal["llm_as_judge"] = "llm_as_judge"
    judge_model: str
    prompt_template: str | None = None
    judge_score_regexes: list[str] | None = None
    aggregation_functions: list[AggregationFunctionType] | None = None


class RegexParserScoringFnParams(BaseModel):
    type: Literal["regex_parser"] = "regex_parser"
    parsing_regexes: list[str] | None = None
    aggregation_functions: list[AggregationFunctionType] | None = None


class BasicScoringFnParams(BaseModel):
    type: Literal["basic"] = "basic"
    aggregation_functions: list[AggregationFunctionType] | None = None


ScoringFnParams = Annotated[
    Union[LLMAsJudgeScoringFnParams, RegexParserScoringFnParams, BasicScoringFnParams],
    Field(discriminator="type"),
]


class ScoringFn(Resource):
    """A scoring function registered with the stack."""

    type: Literal["scoring_function"] = "scoring_function"
    description: str | None = None
    metadata: dict[str, Any]
    return_type: ParamType
    params: ScoringFnParams | None = None

    @property
    def scoring_fn_id(self) -> str:
        return self.identifier

    @property
    def provider_scoring_fn_id(self) -> str:
        return self.provider_resource_id


class ListScoringFunctionsResponse(BaseModel):
    data: list[ScoringFn]


class ScoringFnInput(BaseModel):
    """A scoring function as listed under ``scoring_fns:`` in a run config."""

    model_config = ConfigDict(extra="forbid")

    scoring_fn_id: str
    description: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    return_type: ParamType
    provider_id: str | None = None
    provider_scoring_fn_id: str | None = None
    params: ScoringFnParams | None = None


@runtime_checkable
class ScoringFunctions(Protocol):
    @webmethod(route="/v1/scoring-functions", method="GET")
    async def list_scoring_functions(self) -> ListScoringFunctionsResponse: ...

    @webmethod(route="/v1/scoring-functions/{scoring_fn_id}", method="GET")
    async def get_scoring_function(self, scoring_fn_id: str) -> ScoringFn | None: ...

    @webmethod(route="/v1/scoring-functions", method="POST")
    async def register_scoring_function(
        self,
        scoring_fn_id: str,
        description: str,
        return_type: ParamType,
        provider_scoring_fn_id: str | None = None,
        provider_id: str | None = None,
        params: ScoringFnParams | None = None,
    ) -> None: ...


PROTOCOL = ScoringFunctions
