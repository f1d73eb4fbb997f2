"""Per-request values that providers may read (context variables, set once a request)."""

from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Iterator

#: a request's values, set once a request (each set and reset of a context variable copies the
#: context's map): its id, its parsed ``X-LlamaStack-Provider-Data`` header and its root span, the
#: span that tracing's request path takes as current when no other was made so (stack/_spancore.c)
_request: ContextVar[tuple[str | None, dict[str, Any] | None, Any]] = ContextVar("request",
                                                                                default=(None, None, None))
# Set in-process only (never from a request), so no caller can name a folder of its own.
_tool_files: ContextVar[Path | None] = ContextVar("tool_files", default=None)


def raw_provider_data() -> dict[str, Any] | None:
    """The parsed ``X-LlamaStack-Provider-Data`` header of the current request."""
    return _request.get()[1]


def request_id() -> str | None:
    return _request.get()[0]


def set_request(request_id: str, provider_data: dict[str, Any] | None, root_span: Any = None):
    """Bind this request's values (``root_span``: its tracing root, ``stack.server.tracing``'s, or None);
    returns the token for ``reset_request``."""
    return _request.set((request_id, provider_data, root_span))


def reset_request(token) -> None:
    _request.reset(token)


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
