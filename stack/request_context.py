"""Per-request values that providers may read (context variables, one per request)."""

from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Iterator

_provider_data: ContextVar[dict[str, Any] | None] = ContextVar("provider_data", default=None)
_request_id: ContextVar[str | None] = ContextVar("request_id", default=None)
# Set in-process only (never from a request), so no caller can name a folder of its own.
_tool_files: ContextVar[Path | None] = ContextVar("tool_files", default=None)


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


def tool_files_dir() -> Path | None:
    """The folder of files a tool run now may read (an agent session's downloaded documents), if any."""
    return _tool_files.get()


@contextmanager
def tool_files(folder: Path | None) -> Iterator[None]:
    """Let tools run inside the block read ``folder`` (the code interpreter mounts it read-only)."""
    token = _tool_files.set(folder)
    try:
        yield
    finally:
        _tool_files.reset(token)
