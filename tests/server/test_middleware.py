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
