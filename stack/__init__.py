"""polystack: one server for the Llama Stack v1 API, with pluggable providers."""

from importlib.metadata import PackageNotFoundError, version as _version

import pluggy

try:
    __version__ = _version("polystack")
except PackageNotFoundError:  # running from a source tree without install
    __version__ = "0.0.0"

#: Decorator for plugin hook implementations: ``@stack.hookimpl``.
hookimpl = pluggy.HookimplMarker("polystack")

__all__ = ["__version__", "hookimpl"]
