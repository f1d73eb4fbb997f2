"""Shield params: which detectors and rules a shield (and a run-shield call) applies.

``{"detectors": ["email", ...], "rules": ["ssn", ...]}``; both keys optional.
A key left out means every one the provider config enables; a list means just
those (``[]``: none). The shield's params narrow the config, a call's params
narrow the shield's, and nothing widens what the level above allows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from stack.errors import BadRequestError

KINDS = ("detectors", "rules")


@dataclass(frozen=True)
class Selection:
    """Names chosen per kind; ``None``: all that the level above allows."""

    detectors: frozenset[str] | None = None
    rules: frozenset[str] | None = None

    def allows(self, kind: str, name: str) -> bool:
        chosen = getattr(self, kind)
        return chosen is None or name in chosen


ALL = Selection()


def parse(params: Any, *, enabled: dict[str, list[str]], known: dict[str, list[str]], field: str) -> Selection:
    """Check ``params`` against the names the config ``enabled`` (of those it ``known``s).

    Raises BadRequestError naming ``field`` and the offending key or name.
    """
    if params is None:
        return ALL
    if not isinstance(params, dict):
        raise BadRequestError('must be an object like {"detectors": [...], "rules": [...]}', field=field)
    for key in params:
        if key not in KINDS:
            raise BadRequestError(f"unknown key {key!r}; pattern-guard takes 'detectors' and 'rules'",
                                  field=f"{field}.{key}")
    chosen: dict[str, frozenset[str] | None] = {}
    for kind in KINDS:
        names = params.get(kind)
        if names is None:
            chosen[kind] = None
            continue
        where = f"{field}.{kind}"
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise BadRequestError("must be a list of names", field=where)
        for name in names:
            if name in enabled[kind]:
                continue
            if name in known[kind]:
                raise BadRequestError(f"{name!r} is switched off in the provider config", field=where)
            listing = ", ".join(enabled[kind]) or "none"
            raise BadRequestError(f"unknown {kind[:-1]} {name!r}; enabled: {listing}", field=where)
        chosen[kind] = frozenset(names)
    return Selection(**chosen)


def narrow(outer: Selection, inner: Selection, *, field: str) -> Selection:
    """``inner`` (a call's params) within ``outer`` (the shield's): naming
    something the shield leaves out is a 400, not a silent no-op."""
    chosen: dict[str, frozenset[str] | None] = {}
    for kind in KINDS:
        allowed, asked = getattr(outer, kind), getattr(inner, kind)
        if asked is None or allowed is None:
            chosen[kind] = asked if asked is not None else allowed
            continue
        outside = sorted(asked - allowed)
        if outside:
            listing = ", ".join(sorted(allowed)) or "none"
            raise BadRequestError(f"{outside[0]!r} is not applied by this shield; it applies: {listing}",
                                  field=f"{field}.{kind}")
        chosen[kind] = asked
    return Selection(**chosen)
