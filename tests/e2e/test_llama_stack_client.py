"""A real ``polystack run`` driven by the real llama-stack-client 0.1.0."""

import httpx
import pytest
from llama_stack_client import APIStatusError, LlamaStackClient

from tests.support import FIXTURES, ServerProcess


@pytest.fixture(scope="module")
def server(acme_plugin_path, tmp_path_factory):
    home = tmp_path_factory.mktemp("home")
    with ServerProcess(str(FIXTURES / "acme-run.yaml"), home=home, pythonpath=[acme_plugin_path]) as proc:
        yield proc


@pytest.fixture
def client(server):
    return LlamaStackClient(base_url=server.base_url)


def test_lists_providers_and_routes(client):
    providers = client.providers.list()
    assert [(p.api, p.provider_id, p.provider_type) for p in providers] == [("inference", "acme", "remote::acme")]
    routes = {(r.route, r.method): r.provider_types for r in client.routes.list()}
    assert routes[("/v1/inference/chat-completion", "POST")] == ["remote::acme"]
    assert ("/v1/models/{model_id}", "DELETE") in routes
    assert ("/v1/health", "GET") in routes


def test_run_config_model_is_registered(client):
    model = client.models.retrieve("acme/echo-1")
    assert model.provider_id == "acme"
    assert model.provider_resource_id == "echo-1"


def test_register_list_get_unregister_model(client):
    registered = client.models.register(model_id="org/my-model", provider_model_id="upstream-name")
    assert registered.identifier == "org/my-model"
    assert registered.provider_id == "acme"  # picked: the only inference provider
    assert "org/my-model" in [m.identifier for m in client.models.list()]
    assert client.models.retrieve("org/my-model").provider_resource_id == "upstream-name"
    client.models.unregister("org/my-model")
    assert "org/my-model" not in [m.identifier for m in client.models.list()]


def test_unknown_model_is_404_listing_known(client):
    with pytest.raises(APIStatusError) as info:
        client.models.retrieve("no/such-model")
    assert info.value.status_code == 404
    message = info.value.response.json()["detail"]
    assert "'no/such-model' not found" in message
    assert "acme/echo-1" in message


def test_same_id_other_settings_is_409(client):
    client.models.register(model_id="dup", provider_model_id="a")
    try:
        with pytest.raises(APIStatusError) as info:
            client.models.register(model_id="dup", provider_model_id="b")
        assert info.value.status_code == 409
        assert "already registered" in info.value.response.json()["detail"]
        # the same registration again is accepted as it is
        assert client.models.register(model_id="dup", provider_model_id="a").identifier == "dup"
    finally:
        client.models.unregister("dup")


def test_unknown_provider_id_is_400_naming_the_field(client):
    with pytest.raises(APIStatusError) as info:
        client.models.register(model_id="x", provider_id="nope")
    assert info.value.status_code == 400
    assert info.value.response.json()["detail"].startswith("provider_id:")


def test_plugin_serves_chat_through_the_router(client):
    response = client.inference.chat_completion(
        model_id="acme/echo-1", messages=[{"role": "user", "content": "hi there"}]
    )
    # the provider sees its own name for the model, not the stack's id
    assert response.completion_message.content == "hello [echo-1]: hi there"


def test_plugin_streams_chat(client):
    chunks = list(client.inference.chat_completion(
        model_id="acme/echo-1", messages=[{"role": "user", "content": "one two"}], stream=True
    ))
    assert [c.event.event_type for c in chunks][0] == "start"
    assert chunks[-1].event.event_type == "complete"
    text = "".join(c.event.delta.text for c in chunks)
    assert text.strip() == "hello [echo-1]: one two"


def test_provider_data_reaches_provider_for_that_request_only(server):
    client = LlamaStackClient(base_url=server.base_url, provider_data={"acme_api_key": "k-123"})
    response = client.inference.chat_completion(model_id="acme/echo-1", messages=[{"role": "user", "content": "x"}])
    assert response.completion_message.content == "hello for k-123 [echo-1]: x"
    plain = LlamaStackClient(base_url=server.base_url)
    response = plain.inference.chat_completion(model_id="acme/echo-1", messages=[{"role": "user", "content": "x"}])
    assert response.completion_message.content == "hello [echo-1]: x"


def test_provider_data_of_wrong_shape_is_400_naming_field(server):
    client = LlamaStackClient(base_url=server.base_url, provider_data={"acme_api_key": 5})
    with pytest.raises(APIStatusError) as info:
        client.inference.chat_completion(model_id="acme/echo-1", messages=[{"role": "user", "content": "x"}])
    assert info.value.status_code == 400
    assert "X-LlamaStack-Provider-Data.acme_api_key" in info.value.response.json()["detail"]


def test_every_response_has_a_request_id(server):
    response = httpx.get(server.base_url + "/v1/models/none", headers={"X-Request-ID": "abc-1"})
    assert response.status_code == 404
    assert response.headers["x-request-id"] == "abc-1"
    assert httpx.get(server.base_url + "/v1/health").headers["x-request-id"]


def test_api_keys_required_when_configured(acme_plugin_path, tmp_path):
    env = {"POLYSTACK_API_KEYS": "secret-1,secret-2"}
    with ServerProcess(str(FIXTURES / "acme-run.yaml"), home=tmp_path, env=env, pythonpath=[acme_plugin_path]) as proc:
        assert httpx.get(proc.base_url + "/v1/health").status_code == 200
        with pytest.raises(APIStatusError) as info:
            LlamaStackClient(base_url=proc.base_url, default_headers={"Authorization": "Bearer wrong"}).models.list()
        assert info.value.status_code == 401
        body = info.value.response.text
        assert "secret" not in body
        assert [m.identifier for m in LlamaStackClient(base_url=proc.base_url, default_headers={"Authorization": "Bearer secret-2"}).models.list()] == ["acme/echo-1"]
        assert httpx.get(proc.base_url + "/v1/models", headers={"X-API-KEY": "secret-1"}).status_code == 200
        assert httpx.get(proc.base_url + "/v1/models").status_code == 401


def test_openai_route_validation_is_422_with_field_path(server):
    response = httpx.post(server.base_url + "/v1/chat/completions", json={"model": "acme/echo-1", "messages": [{"content": "x"}]})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"][:3] == ["body", "messages", 0]
    response = httpx.post(server.base_url + "/v1/chat/completions", content=b"{not json")
    assert response.status_code == 422


def test_openai_route_to_a_provider_without_openai_support_is_501(server):
    response = httpx.post(server.base_url + "/v1/chat/completions",
                          json={"model": "acme/echo-1", "messages": [{"role": "user", "content": "x"}]})
    assert response.status_code == 501
    assert "does not serve OpenAI-compatible requests" in response.json()["detail"]
