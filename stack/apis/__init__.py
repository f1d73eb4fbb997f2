"""API families: one module each, declared once.

Every module ``stack.apis.<api>`` holds the pydantic models of its family and
one Protocol whose methods carry ``@webmethod``; the module names it in
``PROTOCOL``. The server builds routes from it, providers implement it and
routers forward it. A module is an API family when it has ``PROTOCOL``.
"""

from __future__ import annotations

import importlib
import inspect as _pyinspect
import pkgutil
from functools import cache
from typing import Any, Iterator

from ._webmethod import WebMethod, get_webmethod, webmethod

__all__ = ["WebMethod", "api_names", "get_protocol", "iter_webmethods", "webmethod"]


@cache
def api_names() -> tuple[str, ...]:
    """Names of every API family declared in this package, sorted."""
    names = []
    for info in pkgutil.iter_modules(__path__):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        if hasattr(module, "PROTOCOL"):
            names.append(info.name)
    return tuple(sorted(names))


@cache
def get_protocol(api: str) -> type:
    """The Protocol class of API family ``api`` (e.g. ``"models"``)."""
    if api not in api_names():
        raise KeyError(api)
    return importlib.import_module(f"{__name__}.{api}").PROTOCOL


def iter_webmethods(protocol: type) -> Iterator[tuple[str, WebMethod, Any]]:
    """(method name, route metadata, function) for each operation of ``protocol``."""
    for name, fn in _pyinspect.getmembers(protocol, _pyinspect.isfunction):
        wm = get_webmethod(fn)
        if wm is not None:
            yield name, wm, fn
