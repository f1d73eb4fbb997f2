"""The served OpenAPI document: FastAPI's, made to say what the routes accept."""

from __future__ import annotations

from typing import Any, Iterator

from fastapi import FastAPI

_REF = "#/components/schemas/"


def discriminated_unions(node: Any) -> Iterator[tuple[str, list[str]]]:
    """(tag, names of the member schemas) of every discriminated union in ``node``."""
    if isinstance(node, dict):
        tag = (node.get("discriminator") or {}).get("propertyName")
        if tag:
            members = node.get("oneOf", node.get("anyOf", []))
            yield tag, [m["$ref"].removeprefix(_REF) for m in members if "$ref" in m]
        for value in node.values():
            yield from discriminated_unions(value)
    elif isinstance(node, list):
        for value in node:
            yield from discriminated_unions(value)


def require_discriminators(doc: dict[str, Any]) -> dict[str, Any]:
    """Mark the tag of every discriminated union member required: pydantic
    documents a defaulted tag (``type: "text"``) as optional, yet picks the
    member by it, so an item without its tag is a 422."""
    schemas = doc.get("components", {}).get("schemas", {})
    for tag, names in list(discriminated_unions(doc)):
        for target in (schemas[n] for n in names if n in schemas):
            if tag in target.get("properties", {}) and tag not in target.get("required", []):
                target["required"] = [tag, *target.get("required", [])]
    return doc


def install_openapi(app: FastAPI) -> None:
    """Serve FastAPI's document with ``require_discriminators`` applied, built once."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = require_discriminators(FastAPI.openapi(app))
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
