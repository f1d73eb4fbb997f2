"""YAML loading that remembers line numbers, and ${env.X} substitution."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import yaml

from .errors import ConfigError

# ${env.NAME}, ${env.NAME:default}, ${env.NAME:=default}, ${env.NAME:+value}
_ENV_REF = re.compile(r"\$\{env\.([A-Za-z_][A-Za-z0-9_]*)(?:(:=|:\+|:)([^}]*))?\}")

YamlPath = tuple[str | int, ...]


def format_path(path: YamlPath) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "<root>"


def load_yaml_with_lines(text: str, source: str) -> tuple[Any, dict[YamlPath, int]]:
    """Parse YAML; also return the 1-based line of every mapping key / list item."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: not valid YAML: {exc}") from None
    lines: dict[YamlPath, int] = {}

    def walk(n: yaml.Node | None, path: YamlPath) -> None:
        if isinstance(n, yaml.MappingNode):
            for key_node, value_node in n.value:
                sub = path + (key_node.value,)
                lines[sub] = key_node.start_mark.line + 1
                walk(value_node, sub)
        elif isinstance(n, yaml.SequenceNode):
            for i, item in enumerate(n.value):
                lines[path + (i,)] = item.start_mark.line + 1
                walk(item, path + (i,))

    walk(node, ())
    return data, lines


def _substitute_string(value: str, path: YamlPath, missing: list[tuple[YamlPath, str]]) -> str:
    def replace(match: re.Match[str]) -> str:
        name, op, arg = match.group(1), match.group(2), match.group(3)
        current = os.environ.get(name)
        if op == ":+":
            return arg if current else ""
        if op in (":", ":="):
            return current if current else arg
        if current is None:
            missing.append((path, name))
            return ""
        return current

    return _ENV_REF.sub(replace, value)


def substitute_env(data: Any, path: YamlPath = ()) -> tuple[Any, list[tuple[YamlPath, str]]]:
    """Replace ${env.X...} references in every string of ``data``.

    Returns the new tree and the (path, variable) pairs that had no value and
    no default, so the caller can report all of them at once.
    """
    missing: list[tuple[YamlPath, str]] = []

    def walk(obj: Any, p: YamlPath) -> Any:
        if isinstance(obj, dict):
            return {k: walk(v, p + (k,)) for k, v in obj.items()}
        if isinstance(obj, list):
            return [walk(v, p + (i,)) for i, v in enumerate(obj)]
        if isinstance(obj, str) and "${env." in obj:
            return _substitute_string(obj, p, missing)
        return obj

    return walk(data, path), missing


def expand_path(value: str) -> Path:
    return Path(os.path.expandvars(os.path.expanduser(value)))
