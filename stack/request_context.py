"""Per-request values that providers may read (context variables, one per request)."""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any

_provider_data: ContextVar[dict[str, Any] | None] = ContextVar("provider_data", default=None)
_request_id: ContextVar[str | None] = ContextVar("request_id", default=None)


def raw_provider_data() -> dict[str, Any] | None:
    """The parsed ``X-LlamaStack-Provider-Data`` header of the current request."""
    return _provider_data.get()


def request_id() -> str | None:
    return _request_id.get()


def set_request(request_id: str, provider_data: dict[str, Any] | None):
    """Bind this request's values; returns tokens for ``reset_request``."""
    return _request_id.set(request_id), _provider_data.set(provider_data)


def reset_request(tokens) -> None:
    _request_id.reset(tokens[0])
    _provider_data.reset(tokens[1])
