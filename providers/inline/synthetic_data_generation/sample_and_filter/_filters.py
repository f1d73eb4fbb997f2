"""The spec's six filtering functions: which of one dialog's scored candidates to keep.

Each takes the candidates' scores (None: the candidate could not be scored)
and answers the indices it keeps, best score first (ties: the earlier
candidate first). Only ``none`` and ``random`` keep unscored candidates: the
others rank by score and have nothing to rank them by.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from stack.apis.synthetic_data_generation import FilteringFunction

#: cumulative shares this close below p count as reaching it (float sums drift)
_EPSILON = 1e-9


@dataclass(frozen=True)
class FilterSettings:
    """The knobs of the filters (from the provider config)."""

    top_k: int = 1
    top_p: float = 0.9
    sigmoid_center: float = 5.0
    sigmoid_scale: float = 1.0


def ranked(scores: list[float | None]) -> list[int]:
    """Indices of the scored candidates, best first; unscored ones after them, in order."""
    scored = sorted((i for i, s in enumerate(scores) if s is not None), key=lambda i: (-scores[i], i))
    return scored + [i for i, s in enumerate(scores) if s is None]


def shares(values: list[float]) -> list[float]:
    """Scores as shares of their sum (shifted so the lowest is 0 when any is negative); equal shares when all are 0."""
    low = min(values)
    shifted = [v - low for v in values] if low < 0 else list(values)
    total = sum(shifted)
    if total == 0:
        return [1 / len(values)] * len(values)
    return [v / total for v in shifted]


def keep_top_p(scores: list[float | None], p: float) -> list[int]:
    """The fewest best candidates whose shares of the summed score reach ``p`` (at least one)."""
    order = [i for i in ranked(scores) if scores[i] is not None]
    if not order:
        return []
    parts = shares([scores[i] for i in order])
    kept, total = [], 0.0
    for index, part in zip(order, parts):
        kept.append(index)
        total += part
        if total >= p - _EPSILON:
            break
    return kept


def sigmoid(x: float) -> float:
    if x >= 0:
        return 1 / (1 + math.exp(-x))
    z = math.exp(x)  # no overflow for very negative x
    return z / (1 + z)


def keep_sigmoid(scores: list[float | None], settings: FilterSettings, rng: random.Random) -> list[int]:
    """Each scored candidate, in candidate order, kept when a uniform draw falls below
    sigmoid((score - center) / scale): one draw per scored candidate."""
    kept = []
    for i, score in enumerate(scores):
        if score is None:
            continue
        if rng.random() < sigmoid((score - settings.sigmoid_center) / settings.sigmoid_scale):
            kept.append(i)
    return [i for i in ranked(scores) if i in kept]


def select(function: FilteringFunction, scores: list[float | None], settings: FilterSettings,
           rng: random.Random) -> list[int]:
    """The indices of ``scores`` that ``function`` keeps, best first."""
    function = FilteringFunction(function)
    if not scores:
        return []
    if function is FilteringFunction.none:
        return ranked(scores)
    if function is FilteringFunction.random:
        return [rng.randrange(len(scores))]
    if function is FilteringFunction.top_k:
        return [i for i in ranked(scores) if scores[i] is not None][: settings.top_k]
    if function is FilteringFunction.top_p:
        return keep_top_p(scores, settings.top_p)
    if function is FilteringFunction.top_k_top_p:
        return keep_top_p(scores, settings.top_p)[: settings.top_k]
    return keep_sigmoid(scores, settings, rng)
