"""docs/configuration.md documents every run-config key.

Convention: a key is documented by a table row whose first cell is the key
in backticks. Top-level keys and their sub-keys use dotted paths
(`server.auth.api_keys`); the keys of list entries (`providers`, `models`,
...) are rows of the table under the section headed with the list's name.
"""

import re
import typing
from pathlib import Path

from pydantic import BaseModel

from stack.config import RunConfig

DOC = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"
ROW_KEY = re.compile(r"^\|\s*`([^`]+)`\s*\|", re.MULTILINE)
HEADING = re.compile(r"^(#{2,6}) (.*)$", re.MULTILINE)


def _models_in(annotation) -> list[type[BaseModel]]:
    """The pydantic models inside an annotation: ``X``, ``X | None``, ``list[X]``, ``dict[str, list[X]]``."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in typing.get_args(annotation) for m in _models_in(arg)]


def _entry_model(annotation) -> type[BaseModel] | None:
    """The model of each entry when the key holds a list of mappings (directly or per API)."""
    origin = typing.get_origin(annotation)
    if origin is list:
        found = _models_in(typing.get_args(annotation)[0])
        return found[0] if found else None
    if origin is dict:
        return _entry_model(typing.get_args(annotation)[1])
    return None


def expected_keys() -> tuple[list[str], dict[str, list[str]]]:
    """(dotted keys that need a row, list section -> entry keys that need a row in it)."""
    dotted: list[str] = []
    sections: dict[str, list[str]] = {}

    def walk(model: type[BaseModel], prefix: str) -> None:
        for name, field in model.model_fields.items():
            key = prefix + name
            dotted.append(key)
            entry = _entry_model(field.annotation)
            nested = _models_in(field.annotation)
            if entry is not None:
                sections[key] = list(entry.model_fields)
            elif len(nested) == 1:  # a mapping (`server`, `server.auth`); store configs are in storage.md
                walk(nested[0], key + ".")

    walk(RunConfig, "")
    return dotted, sections


def _section(doc: str, name: str) -> str | None:
    """Text under the heading that is exactly `name` in backticks, up to the next heading of the same or a higher level."""
    headings = list(HEADING.finditer(doc))
    for i, match in enumerate(headings):
        if match.group(2).strip() == f"`{name}`":
            level = len(match.group(1))
            end = next((h.start() for h in headings[i + 1:] if len(h.group(1)) <= level), len(doc))
            return doc[match.end():end]
    return None


def doc_problems(doc: str) -> list[str]:
    dotted, sections = expected_keys()
    rows = set(ROW_KEY.findall(doc))
    problems = [f"no table row for `{key}`" for key in dotted if key not in rows]
    for name, entry_keys in sections.items():
        body = _section(doc, name)
        if body is None:
            problems.append(f"no section headed `{name}`")
            continue
        section_rows = set(ROW_KEY.findall(body))
        problems += [f"section `{name}` has no table row for `{key}`" for key in entry_keys if key not in section_rows]
    return problems


def test_expected_keys_cover_nested_and_list_keys():
    dotted, sections = expected_keys()
    assert {"version", "image_name", "server", "server.port", "server.auth.api_keys"} <= set(dotted)
    assert sections["providers"] == ["provider_id", "provider_type", "config"]
    assert "model_type" in sections["models"]
    assert {"providers", "models", "shields", "vector_dbs", "datasets", "scoring_fns", "eval_tasks",
            "tool_groups"} <= set(sections)


def test_every_run_config_key_is_documented():
    assert doc_problems(DOC.read_text()) == []


def test_a_missing_key_is_reported():
    doc = DOC.read_text()
    without_port = re.sub(r"^\| `server\.port` \|.*\n", "", doc, flags=re.MULTILINE)
    assert doc_problems(without_port) == ["no table row for `server.port`"]
    section = _section(doc, "models")
    without_model_type = doc.replace(section, re.sub(r"^\| `model_type` \|.*\n", "", section, flags=re.MULTILINE))
    assert doc_problems(without_model_type) == ["section `models` has no table row for `model_type`"]
