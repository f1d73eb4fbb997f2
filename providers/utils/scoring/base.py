"""What every scoring provider shares: its built-in functions and their
listing, params and row checks, ``score``, and ``score_batch`` over a dataset
read through the datasetio API (saving the scored rows as a new dataset).

A provider subclasses ``ScoringProvider``, lists its ``functions`` and
implements ``score_rows``; the routing table lists the built-ins through
``list_scoring_functions()`` at start-up.
"""

from __future__ import annotations

import abc

import re
import uuid
from dataclasses import dataclass, field as dataclass_field
from typing import Any

from pydantic import BaseModel, TypeAdapter, ValidationError

from stack.apis._content import URL
from stack.apis._types import JsonType, NumberType, ParamType
from stack.apis.scoring import ScoreBatchResponse, ScoreResponse, ScoringResult
from stack.apis.scoring_functions import AggregationFunctionType, ScoringFn, ScoringFnInput, ScoringFnParams
from stack.errors import BadRequestError, NotFoundError, NotSupportedError

from ..datasetio.rows import empty_csv_url
from .aggregation import aggregate

#: rows asked of the datasetio API per page by score_batch
PAGE_SIZE = 500

_PARAMS = TypeAdapter(ScoringFnParams)


@dataclass(frozen=True)
class BuiltinFunction:
    """A scoring function a provider offers without registration."""

    identifier: str  # listed id and the provider's own id for it, e.g. "basic::equality"
    description: str
    params: BaseModel  # defaults, of the params type it takes; params sent with a request replace them
    #: aggregations every call gets, before those its params name
    aggregations: tuple[AggregationFunctionType, ...] = ()
    return_type: ParamType = dataclass_field(default_factory=NumberType)

    def listing(self) -> ScoringFnInput:
        return ScoringFnInput(scoring_fn_id=self.identifier, description=self.description,
                              return_type=self.return_type, params=self.params)


@dataclass(frozen=True)
class Rows:
    """The rows being scored and where they came from, for error messages:
    ``input_rows.3.expected_answer`` for a score request, the dataset for a batch."""

    rows: list[dict[str, Any]]
    dataset_id: str | None = None

    def value(self, index: int, column: str, *, text: bool = False) -> Any:
        row = self.rows[index]
        if column not in row:
            raise self.error(index, column, "is missing")
        value = row[column]
        if text and not isinstance(value, str):
            raise self.error(index, column, f"must be a string, not {type(value).__name__}")
        return value

    def error(self, index: int, column: str, problem: str) -> BadRequestError:
        if self.dataset_id is None:
            return BadRequestError(f"{column!r} {problem}", field=f"input_rows.{index}.{column}")
        return BadRequestError(f"row {index} of dataset {self.dataset_id!r}: column {column!r} {problem}",
                               field="dataset_id")


@dataclass(frozen=True)
class _Call:
    requested: str
    function: BuiltinFunction
    params: Any
    field: str


class ScoringProvider(abc.ABC):
    """Base of the scoring providers; subclasses set ``functions`` and implement ``score_rows``."""

    functions: tuple[BuiltinFunction, ...] = ()
    #: the built-in serving a registered function that names none of them; None: refuse it
    fallback: str | None = None

    def __init__(self, *, datasetio: Any = None, datasets: Any = None) -> None:
        self.datasetio = datasetio
        self.datasets = datasets
        self._by_id = {f.identifier: f for f in self.functions}

    @abc.abstractmethod
    async def score_rows(self, function: BuiltinFunction, params: Any, rows: Rows, field: str) -> list[dict[str, Any]]:
        """One score row (a dict with ``score``) per row, in order; every provider defines it."""

    async def check_call(self, function: BuiltinFunction, params: Any, field: str) -> None:
        """Refuse a call before any row is scored (a judge model the stack lacks, say)."""

    # -- the scoring functions table's hooks ------------------------------------------------

    async def list_scoring_functions(self) -> list[ScoringFnInput]:
        """The built-ins, listed by the routing table at start-up."""
        return [f.listing() for f in self.functions]

    async def register_scoring_function(self, scoring_fn: ScoringFn) -> ScoringFn:
        function = self._function(scoring_fn.provider_resource_id, "provider_scoring_fn_id")
        self._params(function, scoring_fn.params, "params")
        return scoring_fn

    def _function(self, fn_id: str, field: str) -> BuiltinFunction:
        function = self._by_id.get(fn_id) or (self._by_id[self.fallback] if self.fallback else None)
        if function is None:
            known = ", ".join(sorted(self._by_id))
            raise BadRequestError(f"{fn_id!r} is none of this provider's scoring functions ({known})", field=field)
        return function

    def _params(self, function: BuiltinFunction, params: Any, field: str) -> Any:
        if params is None:
            return function.params
        if isinstance(params, dict):
            try:
                params = _PARAMS.validate_python(params)
            except ValidationError as exc:
                err = exc.errors()[0]
                raise BadRequestError(err["msg"], field=".".join([field, *map(str, err["loc"])])) from None
        if not isinstance(params, type(function.params)):  # a function takes params of its defaults' type
            wanted = function.params.type
            raise BadRequestError(f"{function.identifier} takes params of type {wanted!r}, not {params.type!r}",
                                  field=f"{field}.type")
        return params

    # -- Scoring API -----------------------------------------------------------------------

    async def score(self, input_rows: list[dict[str, Any]], scoring_functions: dict[str, Any]) -> ScoreResponse:
        calls = self._plan(scoring_functions)
        return ScoreResponse(results=await self._run(calls, Rows(input_rows)))

    async def score_batch(self, dataset_id: str, scoring_functions: dict[str, Any],
                          save_results_dataset: bool = False) -> ScoreBatchResponse:
        calls = self._plan(scoring_functions)
        rows = await self._read_dataset(dataset_id)
        results = await self._run(calls, Rows(rows, dataset_id))
        saved = await self._save_results(dataset_id, rows, results) if save_results_dataset else None
        return ScoreBatchResponse(dataset_id=saved, results=results)

    def _plan(self, scoring_functions: dict[str, Any]) -> list[_Call]:
        if not scoring_functions:
            raise BadRequestError("name at least one scoring function", field="scoring_functions")
        calls = []
        for fn_id, params in scoring_functions.items():
            field = f"scoring_functions.{fn_id}"
            function = self._function(fn_id, field)
            calls.append(_Call(fn_id, function, self._params(function, params, field), field))
        return calls

    async def _run(self, calls: list[_Call], rows: Rows) -> dict[str, ScoringResult]:
        for call in calls:
            await self.check_call(call.function, call.params, call.field)
        results = {}
        for call in calls:
            score_rows = await self.score_rows(call.function, call.params, rows, call.field)
            names = dict.fromkeys([*call.function.aggregations, *(getattr(call.params, "aggregation_functions", None) or [])])
            results[call.requested] = ScoringResult(score_rows=score_rows, aggregated_results=aggregate(score_rows, names))
        return results

    # -- datasets --------------------------------------------------------------------------

    async def _read_dataset(self, dataset_id: str) -> list[dict[str, Any]]:
        if self.datasetio is None:
            raise NotSupportedError("score_batch reads datasets through the datasetio API, which this stack does not serve")
        rows: list[dict[str, Any]] = []
        token = None
        try:
            while True:
                page = await self.datasetio.get_rows_paginated(dataset_id=dataset_id, rows_in_page=PAGE_SIZE,
                                                               page_token=token)
                rows.extend(page.rows)
                token = page.next_page_token
                if not token or not page.rows:
                    return rows
        except NotFoundError as exc:
            raise BadRequestError(exc.message, field="dataset_id") from None

    async def _save_results(self, dataset_id: str, rows: list[dict[str, Any]], results: dict[str, ScoringResult]) -> str:
        """Register ``<dataset_id>-scored-<8 hex>`` with the source's provider and
        append each row with a column per scoring function holding its score row."""
        if self.datasets is None:
            raise NotSupportedError("save_results_dataset needs the datasets API, which this stack does not serve")
        source = await self.datasets.get_dataset(dataset_id)
        results_id = f"{dataset_id}-scored-{uuid.uuid4().hex[:8]}"
        schema = {**source.dataset_schema, **{fn_id: JsonType() for fn_id in results}}
        await self.datasets.register_dataset(
            dataset_id=results_id, dataset_schema=schema, url=URL(uri=empty_csv_url(list(schema))),
            provider_id=source.provider_id, metadata={"scored_dataset_id": dataset_id, "scoring_functions": list(results)},
        )
        scored = [{**row, **{fn_id: result.score_rows[i] for fn_id, result in results.items()}} for i, row in enumerate(rows)]
        await self.datasetio.append_rows(dataset_id=results_id, rows=scored)
        return results_id


def compile_regexes(regexes: list[str] | None, field: str) -> list[re.Pattern]:
    """``regexes`` compiled, each with a group to capture the answer; a 400 naming the bad one."""
    if not regexes:
        raise BadRequestError("needs at least one regex with a group for the answer", field=field)
    patterns = []
    for i, regex in enumerate(regexes):
        try:
            pattern = re.compile(regex)
        except re.error as exc:
            raise BadRequestError(f"{regex!r} is not a regex: {exc}", field=f"{field}.{i}") from None
        if pattern.groups < 1:
            raise BadRequestError(f"{regex!r} has no group to capture the answer", field=f"{field}.{i}")
        patterns.append(pattern)
    return patterns


def first_group(patterns: list[re.Pattern], text: str) -> str | None:
    """The first group of the first pattern that matches ``text``."""
    for pattern in patterns:
        match = pattern.search(text)
        if match:
            return match.group(1)
    return None
