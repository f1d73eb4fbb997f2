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

__all__ = ["WebMethod", "add_api", "api_names", "get_protocol", "iter_webmethods", "remove_api", "webmethod"]

#: API families added by plugins (``register_apis``): name -> Protocol
_ADDED: dict[str, type] = {}


def add_api(name: str, protocol: type) -> None:
    """Serve ``protocol`` as the API family ``name``; the same again is a no-op."""
    known = _ADDED.get(name) or (get_protocol(name) if name in _builtin_names() else None)
    if known is not None and known is not protocol:
        raise ValueError(f"API family {name!r} is already declared by {known.__module__}.{known.__qualname__}")
    if not any(True for _ in iter_webmethods(protocol)):
        raise ValueError(f"API family {name!r}: {protocol.__qualname__} has no @webmethod operation")
    _ADDED[name] = protocol


def remove_api(name: str) -> None:
    """Forget a family a plugin added (tests use it to clean up)."""
    _ADDED.pop(name, None)


def api_names() -> tuple[str, ...]:
    """Names of every API family: this package's modules and those plugins added, sorted."""
    return tuple(sorted({*_builtin_names(), *_ADDED}))


@cache
def _builtin_names() -> tuple[str, ...]:
    names = []
    for info in pkgutil.iter_modules(__path__):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        if hasattr(module, "PROTOCOL"):
            names.append(info.name)
    return tuple(sorted(names))


def get_protocol(api: str) -> type:
    """The Protocol class of API family ``api`` (e.g. ``"models"``)."""
    if api in _ADDED:
        return _ADDED[api]
    return _builtin_protocol(api)


@cache
def _builtin_protocol(api: str) -> type:
    if api not in _builtin_names():
        raise KeyError(api)
    return importlib.import_module(f"{__name__}.{api}").PROTOCOL


def iter_webmethods(protocol: type) -> Iterator[tuple[str, WebMethod, Any]]:
    """(method name, route metadata, function) for each operation of ``protocol``."""
    for name, fn in _pyinspect.getmembers(protocol, _pyinspect.isfunction):
        wm = get_webmethod(fn)
        if wm is not None:
            yield name, wm, fn
