"""The torch side, imported only by a model's thread: load a model, encode a batch.

``encode`` tokenizes a batch once and takes the token counts from the attention
mask. On CPU the cost of a forward pass grows with the padded batch
(texts x longest text) plus a fixed cost per pass, so a batch of mixed lengths
is run as a few length-sorted groups whose split minimises that cost; on a GPU
padding is nearly free and the batch runs as one pass.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .config import EmbeddingModelConfig, ModelUnavailable

#: fixed cost of one forward pass on CPU, in padded tokens (measured for
#: MiniLM-L6 on 2 cores: ~5 ms per pass, ~90 us per token; set higher so that a
#: CPU shared with other work, where each pass costs more, is not hurt)
CPU_PASS_COST_TOKENS = 128.0


@dataclass
class Encoded:
    vectors: np.ndarray  # float32, one row per text
    tokens: np.ndarray  # tokens the model read per text (special tokens included, after truncation)
    passes: int


class LoadedModel:
    """A sentence-transformers model on its device."""

    def __init__(self, model: Any, device: str) -> None:
        self.model = model
        self.device = device
        dimension = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        self.dimension: int = int(dimension())
        tokenizer = getattr(model, "tokenizer", None)
        self._pad_left = getattr(tokenizer, "padding_side", "right") == "left"
        self._preprocess = getattr(model, "preprocess", None) or model.tokenize
        name = getattr(model, "default_prompt_name", None)
        self._prompt = (getattr(model, "prompts", None) or {}).get(name) if name else None
        self._pass_cost = CPU_PASS_COST_TOKENS if device == "cpu" else None

    def encode(self, texts: list[str]) -> Encoded:
        import torch

        if self._prompt:
            texts = [self._prompt + t for t in texts]
        features = self._preprocess(texts)
        mask = features.get("attention_mask")
        out = np.empty((len(texts), self.dimension), dtype=np.float32)
        with torch.inference_mode():
            if not isinstance(mask, torch.Tensor) or mask.dim() != 2:
                out[:] = self._forward(features)
                return Encoded(out, np.zeros(len(texts), dtype=np.int64), 1)
            lengths = mask.sum(dim=1).numpy()
            groups = plan_groups(lengths, self._pass_cost)
            if len(groups) == 1:
                out[:] = self._forward(features)
            else:
                for rows in groups:
                    out[rows] = self._forward(self._take(features, rows, int(lengths[rows].max())))
        return Encoded(out, lengths, len(groups))

    def _take(self, features: dict, rows: np.ndarray, length: int) -> dict:
        """The features of ``rows``, with the padding beyond ``length`` cut off."""
        import torch

        index = torch.from_numpy(rows)
        seq_len = features["attention_mask"].shape[1]
        columns = slice(-length, None) if self._pad_left else slice(0, length)
        taken = {}
        for key, value in features.items():
            if isinstance(value, torch.Tensor):
                value = value.index_select(0, index)
                if value.dim() == 2 and value.shape[1] == seq_len:
                    value = value[:, columns]
            taken[key] = value
        return taken

    def _forward(self, features: dict) -> np.ndarray:
        import torch

        features = {k: v.to(self.device) if isinstance(v, torch.Tensor) else v for k, v in features.items()}
        return self.model(features)["sentence_embedding"].float().cpu().numpy()


def plan_groups(lengths: np.ndarray, pass_cost: float | None) -> list[np.ndarray]:
    """Split a batch into groups of row indices, each run as one forward pass.

    Minimises sum(pass_cost + rows x longest row) over groups of length-sorted
    rows (dynamic programming, O(n^2) in numpy). ``None``: one group.
    """
    n = len(lengths)
    if pass_cost is None or n < 2:
        return [np.arange(n)]
    order = np.argsort(lengths, kind="stable")
    ordered = lengths[order].astype(np.float64)
    best = np.zeros(n + 1)
    cut = np.zeros(n + 1, dtype=np.int64)
    starts = np.arange(n)
    for end in range(1, n + 1):
        cost = best[:end] + (end - starts[:end]) * ordered[end - 1]
        start = int(cost.argmin())
        best[end] = cost[start] + pass_cost
        cut[end] = start
    groups = []
    end = n
    while end > 0:
        groups.append(order[cut[end]:end])
        end = int(cut[end])
    return groups[::-1]


def resolve_device(setting: str) -> str:
    """The torch device for a config's ``device``; ModelUnavailable when it is not there."""
    import torch

    if setting == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if setting.startswith("cuda") and not torch.cuda.is_available():
        raise ModelUnavailable(
            f"device {setting!r} is not available: torch {torch.__version__} sees no CUDA GPU (use device: cpu or auto)"
        )
    if setting == "mps" and not torch.backends.mps.is_available():
        raise ModelUnavailable("device 'mps' is not available (use device: cpu or auto)")
    return setting


def load(source: EmbeddingModelConfig, device_setting: str) -> LoadedModel:
    """Load a model from disk only: no download, no remote code."""
    path = source.locate()
    device = resolve_device(device_setting)
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(path), device=device, local_files_only=True, trust_remote_code=False)
    model.eval()
    return LoadedModel(model, device)
