"""Scores as numbers: what a scoring function's row says, read for ranking."""

from __future__ import annotations

import math
from typing import Any


def as_number(row: dict[str, Any]) -> tuple[float | None, dict[str, Any]]:
    """(the row's score as a float or None, the rest of the row). A judge's
    captured text ("7") is read as a number; one that is not ("B") is unscored,
    and the rest of the row says why."""
    details = {k: v for k, v in row.items() if k != "score"}
    value = row.get("score")
    if value is None:
        return None, details
    if isinstance(value, bool):
        return float(value), details
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if not math.isfinite(number):
        details.setdefault("error", f"the score {value!r} is not a number")
        return None, details
    return number, details


def mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None
