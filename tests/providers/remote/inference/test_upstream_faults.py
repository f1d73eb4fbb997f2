"""Every remote inference provider against a failing upstream (the FaultyUpstream test double).

For each provider, each fault, both chat route families and both streaming
modes: the client gets a clean error (502 / 504 with the upstream's URL and
message, or an error event closing a stream that had started, in the one error
body shape), and the next request, with the upstream healthy again, succeeds.
"""

from __future__ import annotations

import asyncio
import json

import pytest
import pytest_asyncio

from tests.support import serve_stack

from .doubles import sse_events
from .faulty import OVERLOADED, FaultyUpstream

REPO = "meta-llama/Llama-3.2-3B-Instruct"
#: the adapters' HTTP settings: a short read timeout, one quick retry
HTTP = {"connect_timeout": 1, "read_timeout": 0.4, "max_retries": 1, "retry_backoff": 0.01, "retry_backoff_max": 0.02}


def _v1(host: str) -> str:
    return f"{host}/v1"


#: provider type -> (dialect, config for an upstream at host, provider_model_id)
PROVIDERS = {
    "remote::openai": ("openai", lambda h: {"url": _v1(h), "api_key": "k"}, "upstream-model"),
    "remote::together": ("openai", lambda h: {"url": _v1(h), "api_key": "k"}, "upstream-model"),
    "remote::groq": ("openai", lambda h: {"url": _v1(h), "api_key": "k"}, "upstream-model"),
    "remote::fireworks": ("openai", lambda h: {"url": _v1(h), "api_key": "k"}, "upstream-model"),
    "remote::vllm": ("openai", lambda h: {"url": _v1(h)}, "upstream-model"),
    "remote::sambanova": ("openai", lambda h: {"url": _v1(h), "api_key": "k"}, "upstream-model"),
    "remote::nvidia": ("openai", lambda h: {"url": h, "api_key": "k"}, "upstream-model"),
    "remote::cerebras": ("openai", lambda h: {"base_url": h, "api_key": "k"}, "upstream-model"),
    "remote::tgi": ("openai", lambda h: {"url": h}, REPO),
    "remote::hf::serverless": ("openai", lambda h: {"huggingface_repo": REPO, "api_url": h}, REPO),
    "remote::hf::endpoint": ("openai", lambda h: {"endpoint_name": "alice/llama", "endpoints_api_url": h,
                                                  "api_token": "hf"}, REPO),
    "remote::ollama": ("ollama", lambda h: {"url": h}, "llama3.2"),
}


async def test_every_remote_inference_provider_is_covered():
    from stack.plugins import collect_providers, get_plugin_manager

    registry = collect_providers(get_plugin_manager(load_entry_points=False))
    remote = {t for (api, t) in registry if api == "inference" and t.startswith("remote::")}
    assert remote == set(PROVIDERS) | OWN_FAULT_TESTS


#: providers whose upstream is not HTTP that FaultyUpstream speaks: boto3 signs and frames Bedrock's
#: calls, so its faults (down, throttled, 5xx, cut and erroring streams) are tested against FakeBedrock
OWN_FAULT_TESTS = {"remote::bedrock"}  # tests/providers/remote/inference/test_bedrock.py


def _run_yaml(provider_type: str, host: str) -> tuple[str, str]:
    _, config, model = PROVIDERS[provider_type]
    providers = f"""\
        - provider_id: up
          provider_type: {provider_type}
          config: {json.dumps({**config(host), **HTTP})}
        """
    models = f"    - model_id: m\n      provider_id: up\n      provider_model_id: {model}\n      model_type: llm\n"
    return providers, models


# one polystack and one upstream per provider for all its tests (starting them is most of a test's time)
pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="module", params=list(PROVIDERS))
async def served(request, tmp_path_factory):
    home = tmp_path_factory.mktemp("faults")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("POLYSTACK_HOME", str(home))
        upstream = await FaultyUpstream(PROVIDERS[request.param][0]).start()
        providers, models = _run_yaml(request.param, upstream.host)
        try:
            async with serve_stack(home, providers, models) as client:
                yield client, upstream
        finally:
            await upstream.stop()


@pytest.fixture
def stack(served):
    """(client of polystack, the provider's FaultyUpstream), the upstream healthy and up."""
    client, upstream = served
    upstream.fault = None
    return client, upstream


MESSAGES = [{"role": "user", "content": "hi"}]


async def _chat(client, family: str, stream: bool):
    """POST one chat request; (status, JSON body or list of events)."""
    if family == "openai":
        path, body = "/v1/chat/completions", {"model": "m", "messages": MESSAGES, "stream": stream}
    else:
        path, body = "/v1/inference/chat-completion", {"model_id": "m", "messages": MESSAGES, "stream": stream}
    async with asyncio.timeout(10):  # a hang fails the test
        response = await client.post(path, json=body)
    if response.headers.get("content-type", "").startswith("text/event-stream"):
        return response.status_code, sse_events(response.content)
    return response.status_code, response.json()


def _text(family: str, stream: bool, got) -> str:
    """The answer's text, from a whole response or the events of a stream."""
    if family == "openai":
        if not stream:
            return got["choices"][0]["message"]["content"]
        return "".join(e["choices"][0]["delta"].get("content") or "" for e in got if isinstance(e, dict) and e["choices"])
    if not stream:
        return got["completion_message"]["content"]
    return "".join(e["event"]["delta"].get("text", "") for e in got
                   if e["event"]["event_type"] == "progress" and e["event"]["delta"]["type"] == "text")


def _assert_ok(family: str, stream: bool, status: int, got) -> None:
    assert status == 200, got
    assert _text(family, stream, got) == "Hello"
    if stream:
        assert not any(isinstance(e, dict) and "error" in e for e in got), got


def _error(status: int, got) -> tuple[int, str]:
    """(status, message) of an error response or of the error event ending a stream."""
    if isinstance(got, list):  # a stream: it started (200) and its last event is the error
        assert status == 200
        last = got[-1]
        assert set(last) == {"detail", "error"} and set(last["error"]) == {"message", "type", "status"}, last
        assert "[DONE]" not in got
        return last["error"]["status"], last["error"]["message"]
    assert set(got) == {"detail", "error"}, got
    assert got["error"]["status"] == status
    return status, got["error"]["message"]


FAMILIES = ["openai", "llama"]
MODES = [pytest.param(False, id="whole"), pytest.param(True, id="stream")]


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("stream", MODES)
@pytest.mark.parametrize("fault, status, says", [
    ("slow", 504, "read_timeout=0.4"),
    ("5xx", 502, OVERLOADED),
    ("cut", 502, "upstream http://127.0.0.1"),
    ("garbage", 502, "upstream http://127.0.0.1"),
    ("shape", 502, "upstream http://127.0.0.1"),
    ("empty", 502, "upstream http://127.0.0.1"),
])
async def test_fault_is_a_clean_error_and_the_next_request_succeeds(stack, family, stream, fault, status, says):
    client, upstream = stack
    _assert_ok(family, stream, *await _chat(client, family, stream))
    upstream.fault = fault
    got_status, message = _error(*await _chat(client, family, stream))
    assert got_status == status, message
    assert says in message
    upstream.fault = None
    _assert_ok(family, stream, *await _chat(client, family, stream))


@pytest.mark.parametrize("family", FAMILIES)
async def test_stream_stalled_midway_ends_with_a_timeout_event(stack, family):
    client, upstream = stack
    upstream.fault = "stall"
    status, got = await _chat(client, family, True)
    assert "Hel" in _text(family, True, got[:-1])
    got_status, message = _error(status, got)
    assert got_status == 504 and "read_timeout=0.4" in message
    upstream.fault = None
    _assert_ok(family, True, *await _chat(client, family, True))


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("stream", MODES)
async def test_upstream_down_is_502_and_its_return_is_noticed(stack, family, stream):
    client, upstream = stack
    _assert_ok(family, stream, *await _chat(client, family, stream))
    await upstream.stop()
    try:
        got_status, message = _error(*await _chat(client, family, stream))
    finally:
        await upstream.restart()
    assert got_status == 502 and "cannot reach upstream" in message and upstream.host in message
    _assert_ok(family, stream, *await _chat(client, family, stream))


EMBEDDERS = ["remote::openai", "remote::vllm", "remote::ollama"]


@pytest.mark.parametrize("served", EMBEDDERS, indirect=True)
@pytest.mark.parametrize("route", ["/v1/embeddings", "/v1/inference/embeddings"])
async def test_fewer_embeddings_than_inputs_is_502(stack, route):
    client, upstream = stack
    await client.post("/v1/models", json={"model_id": "e", "provider_id": "up", "provider_model_id": "emb",
                                          "model_type": "embedding", "metadata": {"embedding_dimension": 2}})
    body = {"model": "e", "input": ["a", "b"]} if route == "/v1/embeddings" else {"model_id": "e", "contents": ["a", "b"]}
    upstream.fault = "empty"
    response = await client.post(route, json=body)
    assert response.status_code == 502
    assert "sent 0 embeddings" in response.json()["detail"] and "for 2 inputs" in response.json()["detail"]
    upstream.fault = None
    response = await client.post(route, json=body)
    assert response.status_code == 200, response.text
