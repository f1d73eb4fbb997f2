"""remote::bedrock inference through boto3 against FakeBedrock (tests/providers/remote/bedrock_double.py):
what reaches Converse / ConverseStream / InvokeModel, what the client gets back, and Bedrock's errors."""

from __future__ import annotations

import asyncio
import json

import pytest
import yaml

from tests.providers.remote.bedrock_double import (
    FakeBedrock,
    answer,
    aws_env,
    converse_answer,
    converse_events,
    error,
    exception_event,
    stream,
    tool_use_events,
)
from tests.support import serve_stack

LLAMA = "meta-llama/Llama-3.1-8B-Instruct"


@pytest.fixture
async def bedrock(monkeypatch):
    server = await FakeBedrock().start()
    for key, value in aws_env(server.url).items():
        monkeypatch.setenv(key, value)
    yield server
    await server.stop()


def providers(**config) -> str:
    return f"- provider_id: bedrock\n  provider_type: remote::bedrock\n  config: {json.dumps(config)}\n"


MODELS = f"""\
- model_id: {LLAMA}
  provider_id: bedrock
  model_type: llm
- model_id: titan
  provider_id: bedrock
  provider_model_id: amazon.titan-embed-text-v2:0
  model_type: embedding
  metadata: {{embedding_dimension: 4}}
"""


@pytest.fixture
def serve(tmp_path, monkeypatch, bedrock):
    monkeypatch.setenv("POLYSTACK_HOME", str(tmp_path))
    return lambda **config: serve_stack(tmp_path, providers(**config), MODELS)


def sse_events(text: str) -> list[dict]:
    return [json.loads(line[5:]) for line in text.splitlines() if line.startswith("data:") and line[5:].strip() != "[DONE]"]


# -- chat ---------------------------------------------------------------------------------------


async def test_a_llama_chat_goes_to_converse_under_its_bedrock_alias(serve, bedrock):
    async with serve() as client:
        response = await client.post("/v1/chat/completions", json={
            "model": LLAMA, "max_tokens": 50, "temperature": 0.2, "top_p": 0.9, "stop": ["END"],
            "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Say hello"}]})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["choices"][0]["message"]["content"] == "Hello from the test double"
    assert body["choices"][0]["finish_reason"] == "stop"
    assert body["usage"] == {"prompt_tokens": 12, "completion_tokens": 6, "total_tokens": 18}
    [sent] = bedrock.of("Converse")
    assert sent.target == "meta.llama3-1-8b-instruct-v1:0"
    assert sent.body == {"messages": [{"role": "user", "content": [{"text": "Say hello"}]}],
                         "system": [{"text": "Be brief."}],
                         "inferenceConfig": {"maxTokens": 50, "temperature": 0.2, "topP": 0.9, "stopSequences": ["END"]}}
    assert sent.access_key_id == "AKIDTESTDOUBLE"


async def test_the_llama_stack_route_answers_through_the_same_converse_call(serve, bedrock):
    async with serve() as client:
        response = await client.post("/v1/inference/chat-completion", json={
            "model_id": LLAMA, "messages": [{"role": "user", "content": "Say hello"}]})
    assert response.status_code == 200, response.text
    assert response.json()["completion_message"]["content"] == "Hello from the test double"
    assert bedrock.of("Converse")[0].body["messages"] == [{"role": "user", "content": [{"text": "Say hello"}]}]


async def test_tools_go_out_as_tool_config_and_tool_use_comes_back_as_a_tool_call(serve, bedrock):
    bedrock.then(answer(converse_answer(stop="tool_use", content=[
        {"toolUse": {"toolUseId": "tooluse_1", "name": "get_weather", "input": {"city": "Paris"}}}])))
    tools = [{"type": "function", "function": {"name": "get_weather", "description": "Weather of a city",
                                               "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]
    history = [{"role": "user", "content": "Weather in Rome?"},
               {"role": "assistant", "content": None, "tool_calls": [
                   {"id": "tooluse_0", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Rome"}'}}]},
               {"role": "tool", "tool_call_id": "tooluse_0", "content": "21 C"},
               {"role": "user", "content": "And in Paris?"}]
    async with serve() as client:
        response = await client.post("/v1/chat/completions", json={
            "model": LLAMA, "messages": history, "tools": tools, "tool_choice": "required"})
    assert response.status_code == 200, response.text
    choice = response.json()["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["tool_calls"] == [{"id": "tooluse_1", "type": "function", "function": {
        "name": "get_weather", "arguments": '{"city": "Paris"}'}}]
    sent = bedrock.of("Converse")[0].body
    assert sent["toolConfig"] == {"tools": [{"toolSpec": {"name": "get_weather", "description": "Weather of a city",
                                                          "inputSchema": {"json": tools[0]["function"]["parameters"]}}}],
                                  "toolChoice": {"any": {}}}
    # the tool result and the next question share the user's turn: Converse wants the roles to alternate
    assert sent["messages"] == [
        {"role": "user", "content": [{"text": "Weather in Rome?"}]},
        {"role": "assistant", "content": [{"toolUse": {"toolUseId": "tooluse_0", "name": "get_weather",
                                                       "input": {"city": "Rome"}}}]},
        {"role": "user", "content": [{"toolResult": {"toolUseId": "tooluse_0", "content": [{"text": "21 C"}]}},
                                     {"text": "And in Paris?"}]}]


async def test_an_image_goes_as_bytes_and_a_remote_image_url_is_a_400(serve, bedrock):
    png = "iVBORw0KGgo="
    async with serve() as client:
        ok = await client.post("/v1/chat/completions", json={"model": LLAMA, "messages": [{"role": "user", "content": [
            {"type": "text", "text": "What is it?"}, {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{png}"}}]}]})
        remote = await client.post("/v1/chat/completions", json={"model": LLAMA, "messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}]}]})
    assert ok.status_code == 200, ok.text
    image = bedrock.of("Converse")[0].body["messages"][0]["content"][1]["image"]
    assert image == {"format": "png", "source": {"bytes": png}}  # boto3 sends the blob base64-encoded
    assert remote.status_code == 400
    assert remote.json()["detail"].startswith("messages[0].content[0].image_url.url")
    assert len(bedrock.requests) == 1


async def test_a_field_converse_cannot_carry_is_a_400_naming_it(serve, bedrock):
    async with serve() as client:
        response = await client.post("/v1/chat/completions", json={
            "model": LLAMA, "messages": [{"role": "user", "content": "hi"}], "logit_bias": {"1": 2}})
    assert response.status_code == 400
    assert response.json()["detail"].startswith("logit_bias")
    assert bedrock.requests == []


# -- streaming ----------------------------------------------------------------------------------


async def test_a_stream_arrives_as_chunks_with_usage(serve, bedrock):
    async with serve() as client:
        response = await client.post("/v1/chat/completions", json={
            "model": LLAMA, "stream": True, "stream_options": {"include_usage": True},
            "messages": [{"role": "user", "content": "Say hello"}]})
    assert response.status_code == 200, response.text
    chunks = sse_events(response.text)
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"]) == \
        "Hello from the test double"
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]][-1] == "stop"
    assert chunks[-1]["usage"] == {"prompt_tokens": 12, "completion_tokens": 6, "total_tokens": 18}
    assert bedrock.of("ConverseStream")[0].target == "meta.llama3-1-8b-instruct-v1:0"
    assert response.text.rstrip().endswith("data: [DONE]")


async def test_a_streamed_tool_call_comes_in_pieces(serve, bedrock):
    bedrock.then(stream(tool_use_events("tooluse_9", "get_weather", '{"city": ', '"Paris"}')))
    async with serve() as client:
        response = await client.post("/v1/chat/completions", json={
            "model": LLAMA, "stream": True, "messages": [{"role": "user", "content": "Weather?"}],
            "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]})
    calls = [d for c in sse_events(response.text) if c["choices"] for d in c["choices"][0]["delta"].get("tool_calls") or []]
    assert calls[0] == {"index": 0, "id": "tooluse_9", "type": "function",
                        "function": {"name": "get_weather", "arguments": ""}}
    assert "".join(c["function"]["arguments"] for c in calls) == '{"city": "Paris"}'
    assert [c["choices"][0]["finish_reason"] for c in sse_events(response.text) if c["choices"]][-1] == "tool_calls"


async def test_an_error_inside_the_stream_ends_it_with_an_error_event(serve, bedrock):
    bedrock.then(stream(converse_events("Hel")[:2] + [exception_event("throttlingException", "Too many tokens")]))
    async with serve() as client:
        response = await client.post("/v1/chat/completions", json={
            "model": LLAMA, "stream": True, "messages": [{"role": "user", "content": "hi"}]})
    assert "Hel" in response.text
    assert "rate-limiting" in response.text and "Too many tokens" in response.text


async def test_a_stream_cut_by_bedrock_ends_with_an_error_event_and_the_next_one_works(serve, bedrock):
    bedrock.then(stream(converse_events("Hel", "lo"), cut=True))
    body = {"model": LLAMA, "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    async with serve(total_max_attempts=1) as client:
        cut = await client.post("/v1/chat/completions", json=body)
        whole = await client.post("/v1/chat/completions", json=body)
    last = sse_events(cut.text)[-1]
    assert last["error"]["status"] == 502, cut.text
    assert "Hello from the test double" == "".join(
        c["choices"][0]["delta"].get("content") or "" for c in sse_events(whole.text) if c.get("choices"))


async def test_bedrock_down_is_a_502_and_the_first_request_after_it_returns_answers(serve, bedrock):
    body = {"model": LLAMA, "messages": [{"role": "user", "content": "hi"}]}
    async with serve(total_max_attempts=1, connect_timeout=1) as client:
        await bedrock.stop()
        down = await client.post("/v1/chat/completions", json=body)
        await bedrock.start()
        back = await client.post("/v1/chat/completions", json=body)
    assert down.status_code == 502, down.text
    assert "bedrock" in down.json()["detail"].lower()
    assert back.status_code == 200, back.text
    assert back.json()["choices"][0]["message"]["content"] == "Hello from the test double"


async def test_the_stream_does_not_hold_the_event_loop(bedrock, monkeypatch, tmp_path):
    """Events reach the client one by one while boto3 reads in a thread: the loop keeps serving."""
    from providers.utils.bedrock.client import BedrockClients
    from providers.utils.bedrock.config import BedrockConfig

    gate = asyncio.Event()

    async def slow(request, recorded):
        from aiohttp import web

        response = web.StreamResponse(headers={"Content-Type": "application/vnd.amazon.eventstream"})
        await response.prepare(request)
        frames = converse_events("first", "second")
        await response.write(frames[0] + frames[1])
        await gate.wait()  # the rest only once the reader has seen the first event
        for piece in frames[2:]:
            await response.write(piece)
        await response.write_eof()
        return response

    bedrock.then(slow)
    clients = BedrockClients(BedrockConfig(endpoint_url=bedrock.url))
    await clients.initialize()
    events = await clients.stream("converse_stream", "test", modelId="m", messages=[{"role": "user", "content": [{"text": "x"}]}])
    seen = [await anext(events), await anext(events)]
    gate.set()
    seen += [e async for e in events]
    assert [next(iter(e)) for e in seen] == ["messageStart", "contentBlockDelta", "contentBlockDelta",
                                             "contentBlockStop", "messageStop", "metadata"]


# -- completions and embeddings -------------------------------------------------------------------


async def test_a_completion_sends_the_llama_body_to_invoke_model(serve, bedrock):
    async with serve() as client:
        response = await client.post("/v1/completions", json={"model": LLAMA, "prompt": "The capital of France is",
                                                               "max_tokens": 8, "temperature": 0})
        streamed = await client.post("/v1/completions", json={"model": LLAMA, "prompt": "The capital of France is",
                                                               "stream": True})
    assert response.status_code == 200, response.text
    assert response.json()["choices"][0]["text"] == "Paris."
    assert response.json()["usage"] == {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}
    assert bedrock.of("InvokeModel")[0].body == {"prompt": "The capital of France is", "max_gen_len": 8, "temperature": 0}
    assert "".join(c["choices"][0]["text"] for c in sse_events(streamed.text)) == "Paris."
    assert bedrock.of("InvokeModelWithResponseStream")[0].target == "meta.llama3-1-8b-instruct-v1:0"


async def test_embeddings_send_the_titan_body_one_text_at_a_time(serve, bedrock):
    async with serve() as client:
        response = await client.post("/v1/embeddings", json={"model": "titan", "input": ["a", "b"], "dimensions": 4})
    assert response.status_code == 200, response.text
    assert [d["embedding"] for d in response.json()["data"]] == [[0.25, 0.5, 0.75, 1.0]] * 2
    assert sorted(r.body["inputText"] for r in bedrock.of("InvokeModel")) == ["a", "b"]
    assert {r.target for r in bedrock.of("InvokeModel")} == {"amazon.titan-embed-text-v2:0"}


# -- errors and credentials -----------------------------------------------------------------------


@pytest.mark.parametrize("code, status, message, expected_status, detail", [
    ("ValidationException", 400, ("1 validation error detected: Value '0' at 'inferenceConfig.maxTokens' "
                                  "failed to satisfy constraint: Member must have value greater than or equal to 1"),
     400, "max_tokens: "),
    ("ThrottlingException", 429, "Too many requests, please wait before trying again.", 502, "rate-limiting"),
    ("AccessDeniedException", 403, "You don't have access to the model with the specified model ID.", 502,
     "rejected the AWS credentials"),
    ("ResourceNotFoundException", 404, "Could not resolve the foundation model from the provided model identifier.",
     404, "Could not resolve"),
    ("ModelTimeoutException", 408, "Model has timed out in processing the request.", 504, "timed out"),
    ("ServiceUnavailableException", 503, "Bedrock is unable to process your request.", 502, "unable to process"),
])
async def test_bedrock_errors_map_to_the_stack_error_contract(serve, bedrock, code, status, message,
                                                              expected_status, detail):
    bedrock.then(error(code, status, message))
    async with serve(total_max_attempts=1) as client:
        response = await client.post("/v1/chat/completions", json={"model": LLAMA, "messages": [{"role": "user", "content": "hi"}]})
    assert response.status_code == expected_status, response.text
    assert detail in response.json()["detail"]
    assert len(bedrock.requests) == 1


async def test_throttling_is_retried_as_total_max_attempts_says(serve, bedrock):
    bedrock.then(error("ThrottlingException", 429, "Too many requests"))
    async with serve(total_max_attempts=2, retry_mode="standard") as client:
        response = await client.post("/v1/chat/completions", json={"model": LLAMA, "messages": [{"role": "user", "content": "hi"}]})
    assert response.status_code == 200, response.text
    assert len(bedrock.of("Converse")) == 2


async def test_provider_data_keys_sign_that_request_only(serve, bedrock):
    header = {"X-LlamaStack-Provider-Data": json.dumps({"aws_access_key_id": "AKIDCALLER",
                                                        "aws_secret_access_key": "caller-secret"})}
    body = {"model": LLAMA, "messages": [{"role": "user", "content": "hi"}]}
    async with serve(aws_access_key_id="AKIDCONFIG", aws_secret_access_key="config-secret") as client:
        await client.post("/v1/chat/completions", json=body, headers=header)
        await client.post("/v1/chat/completions", json=body)
    assert [r.access_key_id for r in bedrock.of("Converse")] == ["AKIDCALLER", "AKIDCONFIG"]


def test_the_config_takes_llama_stack_0_1_0_keys_and_refuses_unknown_ones():
    from pydantic import ValidationError

    from providers.utils.bedrock.config import BedrockConfig

    config = BedrockConfig.model_validate(yaml.safe_load("""
        aws_access_key_id: AKID
        aws_secret_access_key: wJalrXUtnFEMI
        aws_session_token: token
        region_name: us-east-1
        profile_name: dev
        total_max_attempts: 3
        retry_mode: adaptive
        connect_timeout: 5
        read_timeout: 30
        session_ttl: 600
    """))
    assert config.aws_secret_access_key.get_secret_value() == "wJalrXUtnFEMI"
    assert "wJalrXUtnFEMI" not in repr(config)
    with pytest.raises(ValidationError, match="region"):
        BedrockConfig.model_validate({"region": "us-east-1"})
    with pytest.raises(ValidationError, match="retry_mode"):
        BedrockConfig.model_validate({"retry_mode": "sometimes"})


async def test_a_missing_region_fails_start_up_naming_region_name(tmp_path, monkeypatch, bedrock):
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    monkeypatch.setenv("POLYSTACK_HOME", str(tmp_path))
    with pytest.raises(Exception, match="region_name"):
        async with serve_stack(tmp_path, providers(), MODELS):
            pass


async def test_a_client_that_leaves_mid_stream_closes_the_upstream_connection(bedrock):
    from aiohttp import web

    from providers.utils.bedrock.client import BedrockClients
    from providers.utils.bedrock.config import BedrockConfig

    closed = asyncio.Event()

    async def endless(request, recorded):
        response = web.StreamResponse(headers={"Content-Type": "application/vnd.amazon.eventstream"})
        await response.prepare(request)
        await response.write(b"".join(converse_events("one")[:2]))
        while request.transport is not None and not request.transport.is_closing():
            await asyncio.sleep(0.02)  # generating, until the reader hangs up
        closed.set()
        return response

    bedrock.then(endless)
    clients = BedrockClients(BedrockConfig(endpoint_url=bedrock.url))
    await clients.initialize()
    events = await clients.stream("converse_stream", "test", modelId="m", messages=[{"role": "user", "content": [{"text": "x"}]}])
    assert "messageStart" in await anext(events)
    await events.aclose()
    await asyncio.wait_for(closed.wait(), 30)


def test_the_page_documents_every_config_key_and_alias():
    import re

    from providers.remote.inference.bedrock import ALIASES
    from providers.utils.bedrock.config import BedrockConfig
    from tests.support import REPO

    page = (REPO / "docs" / "providers" / "remote-bedrock.md").read_text()
    rows = set(re.findall(r"^\|\s*`([^`]+)`\s*\|", page, re.MULTILINE))
    assert set(BedrockConfig.model_fields) - rows == set()
    documented = dict(re.findall(r"^\| `(meta-llama/[^`]+)` \| `([^`]+)` \|$", page, re.MULTILINE))
    assert documented == {a.llama_model: a.preferred for a in ALIASES}


def test_a_validation_message_names_our_field_only_when_bedrock_names_its_own():
    from providers.utils.bedrock.errors import validation_field

    assert validation_field("Value '2.5' at 'inferenceConfig.topP' failed to satisfy constraint") == "top_p"
    assert validation_field("Value null at 'messages.1.member.content' failed to satisfy constraint") == "messages"
    assert validation_field("A conversation must alternate between user and assistant roles.") is None


async def test_concurrent_streams_each_get_their_whole_answer(serve, bedrock):
    body = {"model": LLAMA, "stream": True, "messages": [{"role": "user", "content": "Say hello"}]}
    async with serve() as client:
        answers = await asyncio.gather(*(client.post("/v1/chat/completions", json=body) for _ in range(12)))
    texts = {"".join(c["choices"][0]["delta"].get("content") or "" for c in sse_events(a.text) if c["choices"])
             for a in answers}
    assert texts == {"Hello from the test double"}
    assert len(bedrock.of("ConverseStream")) == 12


async def test_without_boto3_start_up_fails_naming_the_package(tmp_path, monkeypatch, bedrock):
    import sys

    monkeypatch.setitem(sys.modules, "boto3", None)  # what an environment without it imports
    monkeypatch.setenv("POLYSTACK_HOME", str(tmp_path))
    with pytest.raises(Exception, match=r"needs the boto3 package.*polystack\[bedrock\]"):
        async with serve_stack(tmp_path, providers(), MODELS):
            pass
