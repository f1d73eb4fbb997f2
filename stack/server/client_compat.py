"""The telemetry query strings that llama-stack-client 0.1.0 sends, made into the declared form.

That client writes a list of objects as Python reprs joined by commas
(``attribute_filters={'key': 'a', 'op': 'eq', 'value': 1}``) and a list of
strings as one comma-joined value (``attributes_to_return=x,y``). The routes
take JSON for the first and repeated parameters for the second, so this
rewrites them before routing; JSON and repeated parameters pass unchanged.
"""

from __future__ import annotations

import ast
import json
from urllib.parse import parse_qsl, urlencode

PREFIX = "/v1/telemetry/"
OBJECT_LISTS = frozenset({"attribute_filters"})
STRING_LISTS = frozenset({"attributes_to_return", "order_by"})
MAX_LITERAL = 64 << 10


class TelemetryQueryCompatMiddleware:
    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http" and scope["path"].startswith(PREFIX) and scope.get("query_string"):
            rewritten = rewrite_query(scope["query_string"].decode("latin-1"))
            if rewritten is not None:
                scope = {**scope, "query_string": rewritten.encode("latin-1")}
        await self.app(scope, receive, send)


def rewrite_query(query: str) -> str | None:
    """The query string in the declared form, or None when it already is."""
    pairs = parse_qsl(query, keep_blank_values=True)
    out, changed = [], False
    for name, value in pairs:
        if name in STRING_LISTS and "," in value:
            out += [(name, part) for part in value.split(",") if part]
            changed = True
        elif name in OBJECT_LISTS and (converted := _python_literal_list(value)) is not None:
            out.append((name, converted))
            changed = True
        else:
            out.append((name, value))
    return urlencode(out) if changed else None


def _python_literal_list(value: str) -> str | None:
    """``value`` as a JSON list when it is Python reprs of dicts (not JSON); else None (left to the route)."""
    stripped = value.strip()
    if not stripped.startswith("{") or len(stripped) > MAX_LITERAL:
        return None
    try:
        json.loads(stripped)
        return None  # JSON already: the route decides
    except ValueError:
        pass
    try:
        parsed = ast.literal_eval(f"[{stripped}]")
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return None
    if not all(isinstance(item, dict) for item in parsed):
        return None
    try:
        return json.dumps(parsed)
    except (TypeError, ValueError):
        return None
