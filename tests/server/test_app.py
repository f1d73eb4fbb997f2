"""The HTTP layer in-process: routes from declarations, validation, errors, SSE, headers."""

import json
import textwrap
from contextlib import asynccontextmanager

import httpx
import pytest
from pydantic import BaseModel

import stack
from stack.apis.telemetry import QueryTracesResponse, Trace
from stack.config import load_run_config
from stack.errors import NotFoundError, UpstreamError
from stack.plugins import collect_providers, get_plugin_manager
from stack.registry import ProviderSpec
from stack.resolver import plan
from stack.server import create_app


class FakeTelemetry:
    """Test double for the telemetry API: records calls, fails on request."""

    def __init__(self):
        self.calls = []

    async def query_traces(self, attribute_filters=None, limit=100, offset=0, order_by=None):
        self.calls.append(("query_traces", attribute_filters, limit, offset, order_by))
        if limit == 13:
            raise RuntimeError("boom: secret internals")
        if limit == 404:
            raise NotFoundError("Trace", "t-404", ["t-1"])
        return QueryTracesResponse(data=[Trace(trace_id="t-1", root_span_id="s", start_time="2026-01-01T00:00:00Z")])

    def __getattr__(self, name):
        # every other telemetry operation: present (for the start-up check) and unused here
        async def unused(**kwargs):
            raise UpstreamError(f"{name} is not used by these tests")

        if name.startswith("_") or name in ("shutdown", "health", "after_start"):  # optional hooks: absent
            raise AttributeError(name)
        return unused


class NoConfig(BaseModel):
    pass


INSTANCES = {}


async def make_telemetry(config, context):
    INSTANCES["telemetry"] = FakeTelemetry()
    return INSTANCES["telemetry"]


class TestPlugin:
    @stack.hookimpl
    def register_providers(self, register):
        register(ProviderSpec(api="telemetry", provider_type="inline::fake-telemetry", config=NoConfig, factory=make_telemetry))


@asynccontextmanager
async def serve(tmp_path, monkeypatch, extra_yaml=""):
    monkeypatch.setenv("POLYSTACK_HOME", str(tmp_path))
    path = tmp_path / "run.yaml"
    path.write_text(textwrap.dedent("""\
        version: '2'
        image_name: server-test
        apis: [telemetry]
        providers:
          telemetry:
          - provider_id: fake
            provider_type: inline::fake-telemetry
        """) + extra_yaml)
    pm = get_plugin_manager(load_entry_points=False)
    pm.register(TestPlugin(), name="test-plugin")
    app = create_app(plan(load_run_config(path), collect_providers(pm)))
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app, raise_app_exceptions=False), base_url="http://test") as client:
            yield client


@pytest.fixture
async def client(tmp_path, monkeypatch):
    async with serve(tmp_path, monkeypatch) as c:
        yield c


async def test_body_validation_is_422_with_field_path(client):
    response = await client.post("/v1/models", json={"model_id": "m", "model_type": "vision"})
    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert error["loc"] == ["body", "model_type"]


async def test_missing_or_malformed_body_is_422(client):
    missing = await client.post("/v1/models")
    assert missing.status_code == 422
    assert missing.json()["detail"][0]["loc"] == ["body"]
    malformed = await client.post("/v1/models", content=b'{"model_id": ', headers={"content-type": "application/json"})
    assert malformed.status_code == 422
    assert malformed.json()["detail"][0]["type"] == "json_invalid"


async def test_body_that_is_not_utf8_is_422_logged_without_a_traceback(client, caplog):
    for path in ("/v1/models", "/v1/telemetry/spans/export"):
        response = await client.post(path, content=b'{"model_id": "\xff\xfe"}', headers={"content-type": "application/json"})
        assert response.status_code == 422, response.text
        assert response.json()["detail"][0]["type"] == "json_invalid"
        assert response.json()["error"] == {"message": response.json()["error"]["message"], "type": "ValidationError", "status": 422}
    assert not [r for r in caplog.records if r.exc_info or r.levelname in ("WARNING", "ERROR")]


async def test_every_error_has_the_one_body_shape(client):
    for response in (await client.get("/v1/no-such-route"), await client.delete("/v1/health"),
                     await client.post("/v1/models", json={})):
        body = response.json()
        assert set(body) == {"detail", "error"}, body
        assert body["error"]["status"] == response.status_code
        assert body["error"]["message"] and body["error"]["type"].endswith("Error")


async def test_one_route_serves_each_operation(client):
    from fastapi.routing import APIRoute

    app = client._transport.app
    seen = [(r.path, m) for r in app.routes if hasattr(r, "methods") and r.path.startswith("/v1") for m in r.methods]
    assert len(seen) == len(set(seen)), "an operation has more than one route"
    assert all(isinstance(r, APIRoute) for r in app.routes if getattr(r, "path", "").startswith("/v1"))


async def test_structured_query_parameter_is_json(client):
    filters = [{"key": "service", "op": "eq", "value": "api"}]
    response = await client.get("/v1/telemetry/traces", params={"attribute_filters": json.dumps(filters), "limit": 5})
    assert response.status_code == 200, response.text
    assert response.json()["data"][0]["trace_id"] == "t-1"
    _, received, limit, _, _ = INSTANCES["telemetry"].calls[-1]
    assert received[0].key == "service" and received[0].op.value == "eq"
    assert limit == 5


async def test_bad_structured_query_parameter_is_422_naming_it(client):
    response = await client.get("/v1/telemetry/traces", params={"attribute_filters": "[{not json"})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"][:2] == ["query", "attribute_filters"]
    response = await client.get("/v1/telemetry/traces", params={"attribute_filters": '[{"key": "k"}]'})
    assert response.status_code == 422
    assert {tuple(e["loc"][:3]) for e in response.json()["detail"]} >= {("query", "attribute_filters", 0)}


async def test_stack_errors_map_to_their_status(client):
    response = await client.get("/v1/telemetry/traces", params={"limit": 404})
    assert response.status_code == 404
    assert response.json()["detail"] == "Trace 't-404' not found; registered: 't-1'"
    assert response.json()["error"]["type"] == "NotFoundError"


async def test_unexpected_error_is_500_without_internals(client):
    response = await client.get("/v1/telemetry/traces", params={"limit": 13}, headers={"X-Request-ID": "req-77"})
    assert response.status_code == 500
    assert "boom" not in response.text
    assert "req-77" in response.json()["detail"]
    assert response.headers["x-request-id"] == "req-77"


async def test_provider_data_that_is_not_json_is_400(client):
    response = await client.get("/v1/models", headers={"X-LlamaStack-Provider-Data": "{nope"})
    assert response.status_code == 400
    assert "X-LlamaStack-Provider-Data" in response.json()["detail"]


async def test_client_version_header_is_accepted(client):
    response = await client.get("/v1/models", headers={"X-LlamaStack-Client-Version": "0.0.1-ancient"})
    assert response.status_code == 200


async def test_only_configured_apis_are_served(client):
    assert (await client.get("/v1/telemetry/traces")).status_code == 200
    assert (await client.post("/v1/inference/chat-completion", json={})).status_code == 404
    routes = {(r["route"], r["method"]) for r in (await client.get("/v1/inspect/routes")).json()["data"]}
    assert ("/v1/telemetry/traces", "GET") in routes
    assert not any(route.startswith("/v1/inference") for route, _ in routes)


async def test_model_ids_with_slashes_work_in_paths(client):
    response = await client.get("/v1/models/org/name")
    assert response.status_code == 404
    assert "'org/name' not found" in response.json()["detail"]


async def test_api_keys_from_run_config(tmp_path, monkeypatch):
    extra = "server:\n  auth:\n    api_keys: [k1]\n"
    async with serve(tmp_path, monkeypatch, extra) as client:
        assert (await client.get("/v1/health")).status_code == 200
        denied = await client.get("/v1/models")
        assert denied.status_code == 401
        assert "k1" not in denied.text
        assert denied.headers["www-authenticate"] == "Bearer"
        assert (await client.get("/v1/models", headers={"Authorization": "Bearer k1"})).status_code == 200
        assert (await client.get("/v1/models", headers={"Authorization": "Basic k1"})).status_code == 401
