"""A client that leaves cancels its request's work."""

import asyncio

from stack.server.middleware import ServerMiddleware


def scope(method="POST"):
    return {"type": "http", "method": method, "path": "/v1/chat/completions", "headers": []}


async def test_work_is_cancelled_when_the_client_disconnects():
    events = []

    async def slow_app(scope, receive, send):
        await receive()  # the body
        try:
            await asyncio.sleep(10)
            events.append("finished")
        except asyncio.CancelledError:
            events.append("cancelled")
            raise

    messages = [{"type": "http.request", "body": b"{}", "more_body": False}]

    async def receive():
        if messages:
            return messages.pop(0)
        await asyncio.sleep(0.05)
        return {"type": "http.disconnect"}

    async def send(message):
        events.append(message["type"])

    await asyncio.wait_for(ServerMiddleware(slow_app)(scope(), receive, send), timeout=2)
    assert events == ["cancelled"]


async def test_a_finished_response_is_not_cancelled():
    sent = []

    async def quick_app(scope, receive, send):
        await receive()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        sent.append(message["type"])

    await ServerMiddleware(quick_app)(scope(), receive, send)
    assert sent == ["http.response.start", "http.response.body"]


async def test_cancellation_from_elsewhere_still_propagates():
    async def app(scope, receive, send):
        await receive()
        await asyncio.sleep(10)

    messages = [{"type": "http.request", "body": b"", "more_body": False}]

    async def receive():  # the client stays: after the body, nothing comes
        if messages:
            return messages.pop(0)
        await asyncio.sleep(10)

    task = asyncio.create_task(ServerMiddleware(app)(scope(), receive, lambda m: None))
    await asyncio.sleep(0.05)
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        cancelled = True
    else:
        cancelled = False
    assert cancelled
