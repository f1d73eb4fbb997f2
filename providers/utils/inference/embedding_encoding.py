"""``encoding_format: base64`` of the OpenAI embeddings API, for adapters that get float lists."""

from __future__ import annotations

import base64
import struct


def float32_base64(vector: list[float]) -> str:
    """The vector as little-endian float32 bytes, base64-encoded (what OpenAI's clients decode)."""
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
