"""The server middleware's lean routes: served straight from it, with the router's choice of
route and the application's exception handlers."""

from stack.server.middleware import LeanRoutes

from .test_app import client, serve  # noqa: F401  (fixtures)


async def test_lean_routes_are_the_ones_the_router_would_pick(client):
    app = client._transport.app
    lean = LeanRoutes(app)
    found = lean.find({"method": "POST", "path": "/v1/telemetry/spans/export"})
    assert found is not None and found.path == "/v1/telemetry/spans/export"
    assert lean.find({"method": "GET", "path": "/v1/telemetry/spans/export"}) is None  # 405 is the router's
    assert lean.find({"method": "POST", "path": "/v1/telemetry/spans/export/"}) is None  # so is the redirect
    assert lean.find({"method": "GET", "path": "/v1/health"}) is None  # not a lean route


async def test_a_lean_route_error_goes_through_the_exception_handlers(client):
    response = await client.post("/v1/telemetry/spans/export", json={
        "attribute_filters": [], "attributes_to_save": ["a"], "dataset_id": "d"}, headers={"x-request-id": "r-1"})
    # the test double raises UpstreamError for every operation it does not use: a 502, not a 500
    assert response.status_code == 502, response.text
    assert response.json()["error"]["type"] == "UpstreamError"
    assert response.headers["x-request-id"] == "r-1"


async def test_a_wrong_method_on_a_lean_path_is_405(client):
    response = await client.get("/v1/telemetry/spans/export")
    assert response.status_code == 405
    assert response.json()["error"]["status"] == 405


async def test_a_refused_request_is_traced_with_its_status():
    from stack import tracing
    from stack.server.middleware import ServerMiddleware

    async def never_called(scope, receive, send):
        raise AssertionError("a request without a key must not reach the app")

    collector = tracing.Collector([])
    tracing.install(collector)
    sent = []

    async def send(message):
        sent.append(message)

    async def receive():
        return {"type": "http.request", "body": b"{}", "more_body": False}

    try:
        scope = {"type": "http", "method": "POST", "path": "/v1/chat/completions", "headers": []}
        await ServerMiddleware(never_called, api_keys=["k"])(scope, receive, send)
    finally:
        tracing.install(None)
    headers = dict(sent[0]["headers"])
    assert sent[0]["status"] == 401
    [span] = map(tracing.named_span, collector._spans)
    assert headers[b"x-trace-id"].decode() == span.trace_id
    assert span.root and span.attributes["http.response.status_code"] == 401
    assert span.name == "POST /v1/chat/completions"


async def test_a_served_request_leaves_no_garbage_cycles():
    """Requests must be freed by reference counting alone: cyclic garbage made per request
    sends the collector scanning every request in flight, and that cost grew with concurrency."""
    import asyncio
    from tests.support import cyclic_garbage

    from stack.server.middleware import ServerMiddleware

    async def app(scope, receive, send):
        await receive()  # the whole body: the disconnect watcher starts
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    async def one_request():
        gone = asyncio.Event()
        messages = iter([{"type": "http.request", "body": b"{}", "more_body": False}])

        async def receive():  # like a server's: after the body, wait for the client to leave
            message = next(messages, None)
            if message is None:
                await gone.wait()
                return {"type": "http.disconnect"}
            return message

        async def send(message):
            pass

        scope = {"type": "http", "method": "POST", "path": "/v1/chat/completions", "headers": []}
        await ServerMiddleware(app)(scope, receive, send)

    async def twenty():
        await asyncio.gather(*(one_request() for _ in range(20)))

    await one_request()
    assert await cyclic_garbage(twenty) == []  # the cancelled watchers finish inside
