"""Rows against a dataset's ``dataset_schema`` (the spec's ParamTypes).

A row is a JSON object whose keys are the schema's columns. Every column must
be present; null is allowed for every type. ``append_rows`` refuses a whole
request when one row is wrong, naming it as ``rows[i].column``.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import math
from typing import Any, Mapping

from stack.apis._types import ParamType
from stack.errors import BadRequestError


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _is_messages(value: Any) -> bool:
    if isinstance(value, str):  # llama-stack eval datasets keep messages as a JSON string
        try:
            value = json.loads(value)
        except ValueError:
            return False
    return isinstance(value, list) and all(isinstance(m, dict) and isinstance(m.get("role"), str) for m in value)


def _is_content(value: Any) -> bool:
    return isinstance(value, (str, dict)) or (isinstance(value, list) and all(isinstance(v, (str, dict)) for v in value))


_CHECKS = {
    "string": (lambda v: isinstance(v, str), "a string"),
    "number": (_is_number, "a finite number"),
    "boolean": (lambda v: isinstance(v, bool), "true or false"),
    "array": (lambda v: isinstance(v, list), "an array"),
    "object": (lambda v: isinstance(v, dict), "an object"),
    "json": (lambda v: True, "any JSON value"),
    "union": (lambda v: True, "any JSON value"),
    "chat_completion_input": (_is_messages, "a list of messages (objects with a 'role'), or that list as a JSON string"),
    "completion_input": (_is_content, "content: a string, an object or a list of them"),
    "agent_turn_input": (lambda v: isinstance(v, (str, dict, list)), "a string, an object or a list"),
}


def check_row(row: Any, schema: Mapping[str, ParamType], where: str) -> None:
    """400 naming ``where`` (``rows[3]``) or ``where.column`` when ``row`` does not fit ``schema``."""
    if not isinstance(row, dict):
        raise BadRequestError("a row must be an object of column values", field=where)
    for column, ptype in schema.items():
        if column not in row:
            raise BadRequestError(f"column {column!r} of the dataset schema is missing", field=f"{where}.{column}")
        value = row[column]
        check, expected = _CHECKS[ptype.type]
        if value is not None and not check(value):
            raise BadRequestError(f"expected {expected} ({ptype.type}), got {json.dumps(value)[:80]}",
                                  field=f"{where}.{column}")
    extra = [c for c in row if c not in schema]
    if extra:
        raise BadRequestError(f"column {extra[0]!r} is not in the dataset schema ({', '.join(schema)})",
                              field=f"{where}.{extra[0]}")


def check_rows(rows: list[Any], schema: Mapping[str, ParamType]) -> None:
    """Every row of an append request, named ``rows[i]``; nothing is written when one fails."""
    if not isinstance(rows, list):
        raise BadRequestError("expected a list of rows", field="rows")
    for index, row in enumerate(rows):
        check_row(row, schema, f"rows[{index}]")


def from_text(value: str, ptype: ParamType | None) -> Any:
    """A CSV cell as the column's type: numbers and booleans parsed, JSON
    columns decoded when they hold JSON; an empty cell is null."""
    if ptype is None or ptype.type == "string":
        return value
    if value == "":
        return None
    kind = ptype.type
    try:
        if kind == "number":
            number = float(value)
            return int(number) if number.is_integer() and value.lstrip("-").isdigit() else number
        if kind == "boolean":
            lowered = value.strip().lower()
            if lowered in ("true", "1", "yes"):
                return True
            if lowered in ("false", "0", "no"):
                return False
            return value
        if value.lstrip()[:1] in ("[", "{") or kind in ("json", "array", "object"):
            return json.loads(value)
    except ValueError:
        return value
    return value


def empty_csv_url(columns: list[str]) -> str:
    """A data: URL of a CSV holding only the header: where a dataset that rows are appended to starts."""
    buffer = io.StringIO()
    csv.writer(buffer).writerow(columns)
    return "data:text/csv;base64," + base64.b64encode(buffer.getvalue().encode()).decode()
