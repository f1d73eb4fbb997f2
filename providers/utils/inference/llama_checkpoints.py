"""Where a Llama checkpoint is on disk, the way llama-stack looks for it (pydantic-free, no torch).

llama-stack's meta-reference provider reads ``checkpoint_dir``, else
``~/.llama/checkpoints/<descriptor>`` (what ``llama model download`` writes,
in Meta's own format). We look there too, then in the local Hugging Face
cache. Nothing is ever downloaded.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from .model_aliases import LLAMA_MODELS

__all__ = ["CheckpointSearch", "descriptor_of", "find_checkpoint", "hf_repo_of", "same_model"]

_HF_LLAMA = re.compile(r"^(?:meta-llama/)?(?:Meta-)?Llama-(\d+(?:\.\d+)?)-(.+)$")
_DESCRIPTOR = re.compile(r"^Llama(\d+(?:\.\d+)?)-(.+)$")


def descriptor_of(model: str) -> str:
    """llama-models' descriptor of a model named either way: ``meta-llama/Llama-3.2-3B-Instruct`` ->
    ``Llama3.2-3B-Instruct``; a name that is neither spelling comes back as given."""
    if model in LLAMA_MODELS:
        return LLAMA_MODELS[model]
    if (m := _HF_LLAMA.match(model)) is not None:
        return f"Llama{m.group(1)}-{m.group(2)}"
    return model.removeprefix("meta-llama/")


def hf_repo_of(model: str) -> str | None:
    """The Hugging Face repo id of a Llama model named either way (None for other names)."""
    if "/" in model:
        return model
    descriptor = descriptor_of(model)
    for repo, known in LLAMA_MODELS.items():
        if known == descriptor:
            return repo
    if (m := _DESCRIPTOR.match(descriptor)) is not None:
        return f"meta-llama/Llama-{m.group(1)}-{m.group(2)}"
    if descriptor.startswith("Llama-"):  # Llama-Guard-3-1B and friends keep their name on the Hub
        return f"meta-llama/{descriptor}"
    return None


def same_model(a: str, b: str) -> bool:
    return descriptor_of(a).lower() == descriptor_of(b).lower()


def llama_home() -> Path:
    """llama-stack's config directory (``$LLAMA_STACK_CONFIG_DIR``, default ``~/.llama``)."""
    return Path(os.environ.get("LLAMA_STACK_CONFIG_DIR") or "~/.llama").expanduser()


def is_hf_dir(path: Path) -> bool:
    return (path / "config.json").is_file()


def is_meta_dir(path: Path) -> bool:
    """Meta's format: params.json, consolidated.NN.pth shards and a tiktoken tokenizer.model."""
    return (path / "params.json").is_file() and any(path.glob("consolidated.*.pth"))


@dataclass
class CheckpointSearch:
    """The outcome of looking for one model: where it was found (and in which format), or where we looked."""

    model: str
    tried: list[str]
    path: Path | None = None
    format: str | None = None  # "huggingface" | "meta"

    def why_missing(self) -> str:
        return (f"no Llama checkpoint for {self.model!r} (Hugging Face config.json, or Meta's params.json + "
                f"consolidated.*.pth) in: {', '.join(self.tried)}; nothing is downloaded: put the weights in one "
                "of these (e.g. `llama model download`) or set checkpoint_dir")


def _hf_cache_snapshot(repo: str) -> Path | None:
    """The local Hugging Face cache's snapshot of ``repo`` (refs/main first, else the newest)."""
    hub = os.environ.get("HF_HUB_CACHE") or os.path.join(
        os.environ.get("HF_HOME") or os.path.join(os.path.expanduser("~"), ".cache", "huggingface"), "hub")
    root = Path(hub) / ("models--" + repo.replace("/", "--"))
    ref = root / "refs" / "main"
    if ref.is_file() and (root / "snapshots" / ref.read_text().strip()).is_dir():
        return root / "snapshots" / ref.read_text().strip()
    snapshots = sorted((root / "snapshots").glob("*"), key=lambda p: p.stat().st_mtime) if root.is_dir() else []
    return snapshots[-1] if snapshots else root / "snapshots"


def find_checkpoint(model: str, checkpoint_dir: str | None) -> CheckpointSearch:
    """Look in ``checkpoint_dir`` (when set: nowhere else), else ``~/.llama/checkpoints/<descriptor>``
    (and its ``original/``), else the Hugging Face cache's snapshot of the model."""
    if checkpoint_dir:
        candidates = [Path(checkpoint_dir).expanduser()]
    else:
        candidates = [llama_home() / "checkpoints" / descriptor_of(model)]
        repo = hf_repo_of(model)
        if repo is not None and (snapshot := _hf_cache_snapshot(repo)) is not None:
            candidates.append(snapshot)
    search = CheckpointSearch(model=model, tried=[])
    for base in candidates:
        # an HF snapshot keeps Meta's files in original/; HF files at the top win
        for path in (base, base / "original"):
            if is_hf_dir(path):
                search.path, search.format = path, "huggingface"
                return search
            if is_meta_dir(path):
                search.path, search.format = path, "meta"
                return search
        search.tried.append(str(base))
    return search
