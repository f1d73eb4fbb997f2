"""The SSE helper: no buffering of the first error, error events after the start."""

import json

import pytest

from stack.errors import UpstreamError
from stack.server.errors import error_body
from stack.server.sse import sse_response


async def body_of(response):
    return b"".join([chunk async for chunk in response.body_iterator])


def events(raw: bytes):
    return [part[len(b"data: "):] for part in raw.split(b"\n\n") if part]


async def test_items_become_data_events_and_done_marker():
    async def gen():
        yield {"n": 1}
        yield {"n": 2}

    response = await sse_response(gen(), done_marker=True)
    assert response.media_type == "text/event-stream"
    assert events(await body_of(response)) == [b'{"n":1}', b'{"n":2}', b"[DONE]"]


async def test_error_before_first_item_raises_so_status_code_is_right():
    async def gen():
        raise UpstreamError("upstream at http://x is down")
        yield  # pragma: no cover

    with pytest.raises(UpstreamError):
        await sse_response(gen())


async def test_error_after_start_ends_stream_with_error_event():
    async def gen():
        yield {"n": 1}
        raise UpstreamError("connection reset by upstream")

    raw = await body_of(await sse_response(gen(), done_marker=True))
    first, last = events(raw)
    assert json.loads(first) == {"n": 1}
    # the same body a response for this error would have had
    assert json.loads(last) == error_body(502, "connection reset by upstream", "UpstreamError")
    assert json.loads(last)["error"] == {"message": "connection reset by upstream", "status": 502, "type": "UpstreamError"}


async def test_unexpected_error_after_start_hides_internals():
    async def gen():
        yield {"n": 1}
        raise KeyError("internal detail")

    raw = await body_of(await sse_response(gen()))
    error = json.loads(events(raw)[-1])["error"]
    assert error["status"] == 500
    assert "internal detail" not in error["message"]


async def test_stream_is_closed_when_consumer_stops():
    closed = []

    async def gen():
        try:
            for i in range(100):
                yield {"n": i}
        finally:
            closed.append(True)

    response = await sse_response(gen())
    iterator = response.body_iterator
    await anext(iterator)
    await iterator.aclose()
    assert closed == [True]
