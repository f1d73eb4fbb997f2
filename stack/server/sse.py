"""The one helper for streamed (Server-Sent Events) responses."""

from __future__ import annotations

import logging
from typing import Any, AsyncIterator

from pydantic import BaseModel
from starlette.responses import StreamingResponse

from ..errors import StackError
from ._json import dumps
from .errors import stack_error_body

log = logging.getLogger(__name__)

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def _event(payload: Any) -> bytes:
    body = payload.model_dump_json().encode() if isinstance(payload, BaseModel) else dumps(payload)
    return b"data: " + body + b"\n\n"


def error_event(exc: BaseException) -> bytes:
    """The event that ends a stream that failed after it started: the body the
    same error would have had as a response."""
    return _event(stack_error_body(exc)[1])


async def _events(first: Any, rest: AsyncIterator[Any], done_marker: bool) -> AsyncIterator[bytes]:
    try:
        yield _event(first)
        async for item in rest:
            yield _event(item)
    except Exception as exc:  # the status line is gone; say so in the stream
        if not isinstance(exc, StackError):
            log.exception("stream failed")
        yield error_event(exc)
        return
    finally:  # also when the client went away: stop the producer now
        aclose = getattr(rest, "aclose", None)
        if aclose is not None:
            await aclose()
    if done_marker:
        yield b"data: [DONE]\n\n"


async def sse_response(iterator: AsyncIterator[Any], *, done_marker: bool = False) -> StreamingResponse:
    """Stream ``iterator`` as ``data: {json}`` events without buffering.

    The first item is awaited before the response starts, so an error raised
    before any output still gets its proper status code. ``done_marker`` adds
    the ``data: [DONE]`` that OpenAI-compatible streams end with.
    """
    try:
        first = await anext(iterator)
    except StopAsyncIteration:
        return StreamingResponse(iter([b"data: [DONE]\n\n"] if done_marker else []), media_type="text/event-stream", headers=SSE_HEADERS)
    return StreamingResponse(_events(first, iterator, done_marker), media_type="text/event-stream", headers=SSE_HEADERS)
