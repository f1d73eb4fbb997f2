"""remote::openai against a real OpenAI-compatible server: llama-cpp-python's own
server running SmolLM2 -- first the adapter alone, then `polystack run`
processes driven by the real openai and llama-stack-client SDKs, and one
polystack as the upstream of another."""

from __future__ import annotations

import json
import textwrap

import pytest

from stack.apis.inference import SamplingParams, UserMessage
from stack.apis.openai import OpenAIChatCompletionRequest, OpenAICompletionRequest
from stack.plugins import collect_providers, get_plugin_manager
from stack.registry import ProviderContext
from tests.support import ServerProcess, routed_inference

HI = [{"role": "user", "content": "Say hello."}]
YES_OR_NO = 'root ::= "yes" | "no"'  # llama.cpp's own extra: a GBNF grammar


@pytest.fixture
async def adapter(llama_server, tmp_path):
    spec = collect_providers(get_plugin_manager(load_entry_points=False))[("inference", "remote::openai")].spec
    context = ProviderContext(provider_id="llamacpp", spec=spec, image_name="t", data_dir=tmp_path)
    impl = await spec.factory(spec.config(url=llama_server, read_timeout=60), context)
    yield impl
    await impl.shutdown()


async def test_chat(adapter):
    answer = await adapter.openai_chat_completion(
        OpenAIChatCompletionRequest(model="smollm2", messages=HI, max_tokens=8, temperature=0))
    assert answer.choices[0].message.content
    assert 1 <= answer.usage.completion_tokens <= 8
    assert answer.choices[0].finish_reason in ("stop", "length")


async def test_chat_stream(adapter):
    chunks = await adapter.openai_chat_completion(
        OpenAIChatCompletionRequest(model="smollm2", messages=HI, max_tokens=8, temperature=0, stream=True))
    got = [c async for c in chunks]
    assert len(got) >= 3  # arrives in pieces, not as one buffered answer
    assert "".join(c.choices[0].delta.content or "" for c in got if c.choices)
    assert any(c.choices and c.choices[0].finish_reason for c in got)


async def test_completion(adapter):
    answer = await adapter.openai_completion(
        OpenAICompletionRequest(model="smollm2", prompt="The capital of France is", max_tokens=6, temperature=0))
    assert answer.object == "text_completion" and answer.choices[0].text


async def test_extra_field_reaches_llama_cpp(adapter):
    request = OpenAIChatCompletionRequest.model_validate(
        {"model": "smollm2", "messages": [{"role": "user", "content": "Is the sky blue?"}], "max_tokens": 4,
         "top_k": 1, "grammar": YES_OR_NO})
    answer = await adapter.openai_chat_completion(request)
    assert answer.choices[0].message.content in ("yes", "no")


async def test_forced_tool_call(adapter):
    tool = {"type": "function", "function": {"name": "get_weather", "parameters": {
        "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}
    answer = await adapter.openai_chat_completion(OpenAIChatCompletionRequest.model_validate({
        "model": "smollm2", "messages": [{"role": "user", "content": "Weather in Paris?"}], "max_tokens": 40,
        "tools": [tool], "tool_choice": {"type": "function", "function": {"name": "get_weather"}}}))
    call = answer.choices[0].message.tool_calls[0]
    assert call.function.name == "get_weather" and "city" in json.loads(call.function.arguments)


async def test_llama_stack_chat_completion(adapter, tmp_path):
    router = await routed_inference(adapter, tmp_path / "registry.db", "smollm2")
    answer = await router.chat_completion(
        model_id="smollm2", messages=[UserMessage(content="Say hello.")],
        sampling_params=SamplingParams(max_tokens=8), tool_prompt_format=None)
    assert answer.completion_message.content
    events = [c.event async for c in await router.chat_completion(
        model_id="smollm2", messages=[UserMessage(content="Say hello.")],
        sampling_params=SamplingParams(max_tokens=8), stream=True)]
    assert events[0].event_type == "start" and events[-1].event_type == "complete"
    assert "".join(e.delta.text for e in events if e.event_type == "progress")


async def test_health_reports_reachable(adapter):
    health = await adapter.health()
    assert health["status"] == "ok" and health["url"].endswith("/v1/models")


# -- polystack run, real SDKs ---------------------------------------------------------------

RUN = """\
version: '2'
image_name: {name}
apis: [inference]
providers:
  inference:
  - provider_id: upstream
    provider_type: remote::openai
    config:
      url: ${{env.UPSTREAM_URL}}
      api_key: ${{env.UPSTREAM_KEY:=none}}
      read_timeout: 60
models:
- model_id: {model_id}
  provider_id: upstream
  provider_model_id: {provider_model_id}
  model_type: llm
- model_id: ghost
  provider_id: upstream
  provider_model_id: not-served-upstream
  model_type: llm
"""


def start_polystack(home, name: str, upstream_url: str, model_id: str, provider_model_id: str) -> ServerProcess:
    path = home / f"{name}.yaml"
    path.write_text(textwrap.dedent(RUN.format(name=name, model_id=model_id, provider_model_id=provider_model_id)))
    return ServerProcess(str(path), home=home, env={"UPSTREAM_URL": upstream_url}).start()


@pytest.fixture(scope="module")
def polystack(llama_server, tmp_path_factory):
    """polystack -> llama.cpp server."""
    server = start_polystack(tmp_path_factory.mktemp("front"), "front", llama_server, "smollm2", "SmolLM2-135M")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def chained(polystack, tmp_path_factory):
    """polystack -> polystack -> llama.cpp server."""
    server = start_polystack(tmp_path_factory.mktemp("chain"), "chain", polystack.base_url + "/v1", "chained", "smollm2")
    yield server
    server.stop()


def openai_client(server):
    from openai import OpenAI

    return OpenAI(base_url=server.base_url + "/v1", api_key="unused", timeout=30, max_retries=0)


def test_openai_sdk_chat_stream_and_extras(polystack):
    client = openai_client(polystack)
    answer = client.chat.completions.create(model="smollm2", messages=HI, max_tokens=8)
    assert answer.choices[0].message.content and answer.usage.completion_tokens <= 8
    pieces = [c.choices[0].delta.content or "" for c in client.chat.completions.create(
        model="smollm2", messages=HI, max_tokens=8, stream=True) if c.choices]
    assert len(pieces) >= 3 and "".join(pieces)
    constrained = client.chat.completions.create(
        model="smollm2", messages=[{"role": "user", "content": "Is the sky blue?"}], max_tokens=4,
        extra_body={"top_k": 1, "min_p": 0.05, "grammar": YES_OR_NO})
    assert constrained.choices[0].message.content in ("yes", "no")
    text = client.completions.create(model="smollm2", prompt="Paris is the capital of", max_tokens=4)
    assert text.choices[0].text


def test_llama_stack_client_chat(polystack):
    from llama_stack_client import LlamaStackClient

    client = LlamaStackClient(base_url=polystack.base_url, timeout=30)
    answer = client.inference.chat_completion(
        model_id="smollm2", messages=[{"role": "user", "content": "Say hello."}], sampling_params={"max_tokens": 8})
    assert answer.completion_message.content
    events = [c.event.event_type for c in client.inference.chat_completion(
        model_id="smollm2", messages=[{"role": "user", "content": "Say hello."}],
        sampling_params={"max_tokens": 8}, stream=True)]
    assert events[0] == "start" and events[-1] == "complete" and "progress" in events


def test_polystack_as_the_upstream_of_polystack(chained, polystack):
    client = openai_client(chained)
    answer = client.chat.completions.create(model="chained", messages=HI, max_tokens=8)
    assert answer.choices[0].message.content
    pieces = [c.choices[0].delta.content or "" for c in client.chat.completions.create(
        model="chained", messages=HI, max_tokens=8, stream=True) if c.choices]
    assert len(pieces) >= 3 and "".join(pieces)
    constrained = client.chat.completions.create(
        model="chained", messages=[{"role": "user", "content": "Is the sky blue?"}], max_tokens=4,
        extra_body={"grammar": YES_OR_NO})
    assert constrained.choices[0].message.content in ("yes", "no")


def test_model_unknown_upstream_is_404_naming_model_and_url(chained, polystack):
    from openai import NotFoundError

    with pytest.raises(NotFoundError) as info:
        openai_client(chained).chat.completions.create(model="ghost", messages=HI, max_tokens=4)
    detail = info.value.response.json()["detail"]
    assert f"{polystack.base_url}/v1/chat/completions" in detail
    assert "'not-served-upstream' not found" in detail
