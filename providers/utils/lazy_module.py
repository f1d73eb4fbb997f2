"""A module that is imported on its first attribute access, not where it is named.

For heavy libraries a provider needs only once there is data (numpy and faiss
for the first vector DB): the idle server then neither waits for their import
nor holds their memory (docs/performance.md, start-up).
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any


class LazyModule:
    """Stands for the module ``name``; ``lazy.attr`` imports it (once) and returns ``module.attr``."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._module: ModuleType | None = None

    def __getattr__(self, attr: str) -> Any:  # called only for what the instance itself lacks
        if self._module is None:
            self._module = importlib.import_module(self._name)
        return getattr(self._module, attr)

    def __repr__(self) -> str:
        return f"<lazy module {self._name!r}{' (imported)' if self._module is not None else ''}>"
