"""The aggregation functions of the Scoring API, over the ``score`` of each row.

``aggregate(rows, [AggregationFunctionType.accuracy, ...])`` answers llama-stack's
shape: one entry per function, each a dict of its own (``{"accuracy":
{"accuracy": 0.5, "num_correct": 1.0, "num_total": 2}}``). A score that is
None or not a number (an unparseable judgement) counts as 0 for accuracy and
is left out of average and median; categorical_count counts every score.
"""

from __future__ import annotations

import statistics
from typing import Any, Callable, Iterable

from stack.apis.scoring_functions import AggregationFunctionType


def _number(score: Any) -> float | None:
    if isinstance(score, bool):
        return float(score)
    if isinstance(score, (int, float)):
        return float(score)
    if isinstance(score, str):
        try:
            return float(score.strip())
        except ValueError:
            return None
    return None


def _numbers(rows: list[dict[str, Any]]) -> list[float]:
    return [n for n in (_number(r.get("score")) for r in rows) if n is not None]


def accuracy(rows: list[dict[str, Any]]) -> dict[str, Any]:
    correct = sum(_numbers(rows))
    return {"accuracy": correct / len(rows) if rows else None, "num_correct": correct, "num_total": len(rows)}


def average(rows: list[dict[str, Any]]) -> dict[str, Any]:
    numbers = _numbers(rows)
    return {"average": sum(numbers) / len(numbers) if numbers else None}


def median(rows: list[dict[str, Any]]) -> dict[str, Any]:
    numbers = _numbers(rows)
    return {"median": statistics.median(numbers) if numbers else None}


def categorical_count(rows: list[dict[str, Any]]) -> dict[str, Any]:
    scores = [str(r.get("score")) for r in rows]
    return {"categorical_count": {s: scores.count(s) for s in sorted(set(scores))}}


AGGREGATIONS: dict[AggregationFunctionType, Callable[[list[dict[str, Any]]], dict[str, Any]]] = {
    AggregationFunctionType.accuracy: accuracy,
    AggregationFunctionType.average: average,
    AggregationFunctionType.median: median,
    AggregationFunctionType.categorical_count: categorical_count,
}


def aggregate(rows: list[dict[str, Any]], functions: Iterable[AggregationFunctionType | str]) -> dict[str, Any]:
    """``aggregated_results`` of ``rows`` for ``functions`` (each once, in order)."""
    results: dict[str, Any] = {}
    for name in functions:
        function = AggregationFunctionType(name)
        results[function.value] = AGGREGATIONS[function](rows)
    return results
