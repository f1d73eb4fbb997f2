"""Bench-only test double, never part of a distribution: ``inline::bench-precomputed``
embeds the text ``"<name>:<row>"`` as row ``<row>`` of ``$BENCH_VECTORS_DIR/<name>.npy``,
so benchmarks time the vector store and the request path, not a model."""

from __future__ import annotations

import os

from pydantic import BaseModel, ConfigDict

import stack
from stack.apis.inference import EmbeddingsResponse
from stack.errors import BadRequestError, NotSupportedError
from stack.registry import ProviderSpec


class PrecomputedConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    vectors_dir: str | None = None  # default: $BENCH_VECTORS_DIR


class PrecomputedEmbeddings:
    def __init__(self, directory: str) -> None:
        self.directory = directory
        self.arrays = {}

    def _array(self, name: str):
        import numpy as np

        if name not in self.arrays:
            self.arrays[name] = np.load(os.path.join(self.directory, f"{name}.npy"), mmap_mode="r")
        return self.arrays[name]

    async def embeddings(self, model_id, contents):
        rows = []
        for text in contents:
            name, _, row = str(text).partition(":")
            if not row.isdigit():
                raise BadRequestError(f"expected '<name>:<row>', got {text!r}", field="contents")
            rows.append(self._array(name)[int(row)].tolist())
        return EmbeddingsResponse(embeddings=rows)

    def __getattr__(self, name):
        if name.startswith("_") or name in ("shutdown", "health", "after_start", "register_model", "unregister_model"):
            raise AttributeError(name)

        async def unsupported(*args, **kwargs):
            raise NotSupportedError(f"{name}: the bench double only embeds")

        return unsupported


async def create(config, context):
    return PrecomputedEmbeddings(config.vectors_dir or os.environ["BENCH_VECTORS_DIR"])


@stack.hookimpl
def register_providers(register):
    register(ProviderSpec(api="inference", provider_type="inline::bench-precomputed",
                          config=PrecomputedConfig, factory=create,
                          description="bench-only test double: vectors looked up in .npy files"))
