"""remote::openai against failing upstreams (test doubles): what a client of polystack sees."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from tests.support import free_port

from .doubles import answer, chat_chunk, sse, stream
from .doubles import sse_events as events

CHAT = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}


def openai_provider(url: str, **settings) -> str:
    config = {"url": url, "api_key": "sk-config", "connect_timeout": 1, "read_timeout": 0.5,
              "max_retries": 2, "retry_backoff": 0.01, "retry_backoff_max": 0.05, **settings}
    return f"""\
        - provider_id: up
          provider_type: remote::openai
          config: {json.dumps(config)}
        """


MODELS = """\
    - model_id: m
      provider_id: up
      provider_model_id: upstream-model
      model_type: llm
    """


async def test_upstream_down_is_502_naming_the_url(serve):
    port = free_port()  # nothing listens here
    async with serve(openai_provider(f"http://127.0.0.1:{port}/v1"), MODELS) as client:  # starts anyway
        response = await client.post("/v1/chat/completions", json=CHAT)
        health = await client.get("/v1/health")
    assert response.status_code == 502
    detail = response.json()["detail"]
    assert f"http://127.0.0.1:{port}/v1/chat/completions" in detail
    assert "cannot reach upstream" in detail and "after 3 attempts" in detail
    assert health.status_code == 200
    assert health.json()["providers"]["up"]["status"] == "unreachable"


async def test_slow_upstream_past_read_timeout_is_504_without_retry(serve, upstream):
    upstream.then(answer(delay=3))
    async with serve(openai_provider(upstream.url), MODELS) as client:
        started = time.monotonic()
        response = await client.post("/v1/chat/completions", json=CHAT)
        elapsed = time.monotonic() - started
    assert response.status_code == 504
    assert upstream.url in response.json()["detail"] and "read_timeout=0.5" in response.json()["detail"]
    assert elapsed < 2
    assert len(upstream.requests) == 1


async def test_5xx_then_success_is_retried(serve, upstream):
    upstream.then(answer(503, {"error": {"message": "overloaded"}}), answer(500, "oops"))
    async with serve(openai_provider(upstream.url), MODELS) as client:
        response = await client.post("/v1/chat/completions", json=CHAT)
    assert response.status_code == 200, response.text
    assert response.json()["choices"][0]["message"]["content"] == "Hello from the test double"
    assert len(upstream.requests) == 3


async def test_5xx_until_retries_run_out_is_502_with_upstream_message(serve, upstream):
    upstream.then(*[answer(503, {"error": {"message": "overloaded, try later"}})] * 3)
    async with serve(openai_provider(upstream.url), MODELS) as client:
        response = await client.post("/v1/chat/completions", json=CHAT)
    assert response.status_code == 502
    assert "answered 503: overloaded, try later" in response.json()["detail"]
    assert len(upstream.requests) == 3


async def test_429_waits_for_retry_after(serve, upstream):
    upstream.then(answer(429, {"error": {"message": "slow down"}}, headers={"Retry-After": "1"}))
    async with serve(openai_provider(upstream.url), MODELS) as client:
        started = time.monotonic()
        response = await client.post("/v1/chat/completions", json=CHAT)
        elapsed = time.monotonic() - started
    assert response.status_code == 200
    assert 0.9 <= elapsed < 3
    assert len(upstream.requests) == 2


async def test_429_asking_too_long_is_not_waited_for(serve, upstream):
    upstream.then(answer(429, {"error": {"message": "quota"}}, headers={"Retry-After": "3600"}))
    async with serve(openai_provider(upstream.url, retry_after_max=2), MODELS) as client:
        started = time.monotonic()
        response = await client.post("/v1/chat/completions", json=CHAT)
    assert response.status_code == 502
    assert "retry after 3600s" in response.json()["detail"] and "quota" in response.json()["detail"]
    assert time.monotonic() - started < 1
    assert len(upstream.requests) == 1


@pytest.mark.parametrize("status, body, want, says", [
    (404, {"error": {"message": "The model `upstream-model` does not exist"}}, 404, "does not exist"),
    (400, {"error": {"message": "max_tokens is too large"}}, 400, "max_tokens is too large"),
    (422, {"detail": [{"loc": ["body", "top_k"], "msg": "not an int"}]}, 422, "body.top_k: not an int"),
    (401, {"error": {"message": "Incorrect API key provided"}}, 502, "rejected the API key"),
])
async def test_upstream_4xx_is_relayed_with_its_message(serve, upstream, status, body, want, says):
    upstream.then(answer(status, body))
    async with serve(openai_provider(upstream.url), MODELS) as client:
        response = await client.post("/v1/chat/completions", json=CHAT)
    assert response.status_code == want
    detail = response.json()["detail"]
    assert says in detail and upstream.url in detail and "'upstream-model'" in detail
    assert len(upstream.requests) == 1  # a client error is not retried


async def test_stream_cut_midway_ends_with_error_event(serve, upstream):
    upstream.then(stream([sse(chat_chunk("Hel", role="assistant")), sse(chat_chunk("lo"))], cut=True))
    async with serve(openai_provider(upstream.url), MODELS) as client:
        async with asyncio.timeout(10):  # a hang fails the test
            response = await client.post("/v1/chat/completions", json={**CHAT, "stream": True})
    assert response.status_code == 200
    got = events(response.content)
    assert [e["choices"][0]["delta"].get("content") for e in got[:2]] == ["Hel", "lo"]
    assert got[-1]["error"]["status"] == 502 and upstream.url in got[-1]["error"]["message"]
    assert "[DONE]" not in got
    assert len(upstream.requests) == 1  # never retried once the stream started


async def test_stream_that_stalls_ends_with_timeout_event(serve, upstream):
    upstream.then(stream([sse(chat_chunk("Hel", role="assistant"))], stall=5))
    async with serve(openai_provider(upstream.url), MODELS) as client:
        async with asyncio.timeout(10):
            response = await client.post("/v1/chat/completions", json={**CHAT, "stream": True})
    got = events(response.content)
    assert got[0]["choices"][0]["delta"]["content"] == "Hel"
    assert got[-1]["error"]["status"] == 504 and "read_timeout" in got[-1]["error"]["message"]
    assert len(upstream.requests) == 1


async def test_stream_ending_without_done_is_an_error(serve, upstream):
    upstream.then(stream([sse(chat_chunk("Hel", role="assistant"))]))
    async with serve(openai_provider(upstream.url), MODELS) as client:
        response = await client.post("/v1/chat/completions", json={**CHAT, "stream": True})
    got = events(response.content)
    assert got[-1]["error"]["status"] == 502 and "ended before it was complete" in got[-1]["error"]["message"]


async def test_stream_retried_before_it_starts(serve, upstream):
    upstream.then(answer(502, "bad gateway"),
                  stream([sse(chat_chunk("ok", role="assistant")), sse(chat_chunk(finish="stop")), b"data: [DONE]\r\n\r\n"]))
    async with serve(openai_provider(upstream.url), MODELS) as client:
        response = await client.post("/v1/chat/completions", json={**CHAT, "stream": True})
    got = events(response.content)
    assert got[0]["choices"][0]["delta"]["content"] == "ok"
    assert got[-1] == "[DONE]"
    assert len(upstream.requests) == 2


async def test_stream_error_before_first_chunk_keeps_its_status(serve, upstream):
    upstream.then(answer(404, {"error": {"message": "no such model"}}))
    async with serve(openai_provider(upstream.url), MODELS) as client:
        response = await client.post("/v1/chat/completions", json={**CHAT, "stream": True})
    assert response.status_code == 404
    assert "no such model" in response.json()["detail"]


async def test_error_event_from_upstream_stream_is_relayed(serve, upstream):
    upstream.then(stream([sse(chat_chunk("a", role="assistant")),
                          sse({"error": {"message": "engine died", "status": 500, "type": "InternalError"}})]))
    async with serve(openai_provider(upstream.url), MODELS) as client:
        response = await client.post("/v1/chat/completions", json={**CHAT, "stream": True})
    got = events(response.content)
    assert got[-1]["error"]["status"] == 502 and "engine died" in got[-1]["error"]["message"]


async def test_connection_is_reused_across_requests_and_streams(serve, upstream):
    done = [sse(chat_chunk("x", role="assistant")), sse(chat_chunk(finish="stop")), sse(b"[DONE]")]
    upstream.then(answer(), stream(done), answer(), stream(done))
    async with serve(openai_provider(upstream.url), MODELS) as client:
        for i in range(4):
            response = await client.post("/v1/chat/completions", json={**CHAT, "stream": i % 2 == 1})
            assert response.status_code == 200
    assert len(upstream.requests) == 4
    assert len(upstream.connections) == 1, upstream.connections
