"""JSON text for SQLite's JSON columns: orjson's speed, the standard library's exact output
where the two differ in meaning.

Telemetry writes a JSON column per request (a trace's spans), and ``json.dumps`` of it cost
more than the rest of tracing (docs/performance.md). orjson is several times faster but
writes NaN and infinities as ``null`` (the standard library writes ``NaN`` / ``Infinity``,
which SQLite's JSON functions and ``json.loads`` read back as such), and it serialises some
types the standard library refuses (datetimes, dataclasses, UUIDs, enums...). So only
values made of plain JSON types (dict, list, tuple, str, int, bool, None, finite floats)
go to orjson; anything else is written by ``json.dumps`` as before, errors included. The other differences are spelling only (no
spaces after separators, non-ASCII characters as UTF-8 rather than ``\\u`` escapes): every
reader parses the text.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

def dumps(value: Any) -> str:
    """``value`` as JSON text that ``json.loads`` reads back as ``json.dumps``'s would."""
    if not _plain(value):
        return json.dumps(value)
    try:
        return orjson.dumps(value).decode()
    except TypeError:  # integers over 64 bits, keys that are not strings: the standard library's answer
        return json.dumps(value)


def _plain(value: Any) -> bool:
    """Whether ``value`` is made of plain JSON types only, its floats finite."""
    kind = type(value)
    if kind is dict:
        items = value.values()
    elif kind is list or kind is tuple:
        items = value
    elif kind is float:
        return value - value == 0.0  # NaN and infinities give NaN
    else:
        return kind is str or kind is int or value is None or kind is bool
    for item in items:
        kind = type(item)
        if kind is str or kind is int or item is None or kind is bool:
            continue
        if not _plain(item):
            return False
    return True
