"""Fast JSON encoding for responses."""

from __future__ import annotations

import json
from typing import Any

from fastapi.encoders import jsonable_encoder


def dumps(obj: Any) -> bytes:
    return json.dumps(jsonable_encoder(obj), separators=(",", ":"), ensure_ascii=False).encode()
