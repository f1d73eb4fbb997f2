"""Schemathesis checks of polystack's error contract, loaded through SCHEMATHESIS_HOOKS
by tests/fuzz/_schemathesis.py: a 4xx answer to a generated request says what was
wrong and where (a field, parameter or the value that named a missing thing)."""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import unquote

import schemathesis

#: client errors whose body must name the field or value at fault; 401/403 (keys), 405 and
#: 413 (the body's size, not a field) say what they are by their status alone
NAMING_STATUSES = {400, 404, 409, 422}
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _resolve(node: Any, document: dict) -> Any:
    while isinstance(node, dict) and "$ref" in node:
        target: Any = document
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


def _property_names(node: Any, document: dict, seen: set[int], names: set[str]) -> None:
    """Every property name in a schema, through $refs and combinators (each schema once)."""
    node = _resolve(node, document)
    if not isinstance(node, dict) or id(node) in seen:
        return
    seen.add(id(node))
    for name, sub in node.get("properties", {}).items():
        names.add(name)
        _property_names(sub, document, seen, names)
    for key in ("items", "additionalProperties"):
        _property_names(node.get(key), document, seen, names)
    for key in ("anyOf", "oneOf", "allOf"):
        for sub in node.get(key, []):
            _property_names(sub, document, seen, names)


def field_names(case: Any) -> set[str]:
    """The names a message may point at: the operation's parameters and request body properties."""
    document = case.operation.schema.raw_schema
    raw = _resolve(case.operation.definition.raw, document)
    names = {p["name"] for p in (_resolve(p, document) for p in raw.get("parameters", []))}
    for media in raw.get("requestBody", {}).get("content", {}).values():
        _property_names(media.get("schema"), document, set(), names)
    return names


def given_values(case: Any) -> set[str]:
    """Strings the request itself carried (path and query parameters, top-level body values):
    a 404 that repeats the id it could not find names what was wrong."""
    # schemathesis keeps path parameters percent-encoded, as they go on the wire
    values: list[Any] = [unquote(str(v)) for v in (case.path_parameters or {}).values()]
    values += list((case.query or {}).values())
    if isinstance(case.body, dict):
        for value in case.body.values():
            values += value if isinstance(value, list) else [value]  # e.g. vector_db_ids
    return {str(v) for v in values if isinstance(v, (str, int))}


def _mentions(detail: str, value: str) -> bool:
    """Whether a message repeats a value, as is or as Python's repr escapes it; a short value
    only counts in quotes (one letter is in most sentences)."""
    escaped = repr(value)[1:-1]
    if len(value) <= 2:
        return any(f"{q}{v}{q}" in detail for q in "'\"" for v in {value, escaped})
    return value in detail or escaped in detail


def problem(status: int, body: Any, names: set[str], values: set[str]) -> str | None:
    """Why an error body breaks the contract, or None when it keeps it."""
    if not isinstance(body, dict) or "detail" not in body:
        return "the body is not the error shape {detail, error}"
    detail = body["detail"]
    if isinstance(detail, list):  # validation errors: each names its location and its reason
        for item in detail:
            if not (isinstance(item, dict) and item.get("loc") and item.get("msg")):
                return f"a validation error without loc and msg: {item!r}"
        return None
    if not isinstance(detail, str) or len(detail.strip()) < 8:
        return f"detail gives no reason: {detail!r}"
    if status not in NAMING_STATUSES:
        return None
    if set(_WORD.findall(detail)) & names or any(_mentions(detail, value) for value in values):
        return None
    return (f"detail names no field of the operation nor a value of the request: {detail!r} "
            f"(fields: {sorted(names)[:20]}, values: {sorted(values)[:10]!r})")


@schemathesis.check
def client_error_names_the_field(ctx, response, case):
    """A 4xx body says what was wrong (a reason) and where (a field, a parameter or the value)."""
    if not 400 <= response.status_code < 500:
        return
    try:
        body = json.loads(response.content or b"null")
    except ValueError:
        raise AssertionError(f"{response.status_code} with a body that is not JSON") from None
    found = problem(response.status_code, body, field_names(case), given_values(case))
    if found:
        raise AssertionError(f"{response.status_code}: {found}")
    return
