"""`polystack run` (starter, the embedded models) driven by the real SDKs:
llama-stack-client 0.1.0 and openai. Asserts mechanics and shapes, not the
tiny model's wisdom."""

import base64
import json
import math
import struct

import httpx
import jsonschema
import pytest
from llama_stack_client import APIStatusError, LlamaStackClient
from openai import BadRequestError as OpenAIBadRequest
from openai import OpenAI

from tests.support import ServerProcess

LLM = "SmolLM2-135M-Instruct"
EMBEDDER = "all-MiniLM-L6-v2"
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather of a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
PERSON_SCHEMA = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
    "required": ["name", "age"],
}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with ServerProcess("starter", home=tmp_path_factory.mktemp("starter-home")) as proc:
        yield proc.wait_models_ready()


@pytest.fixture(scope="module")
def llama(server):
    return LlamaStackClient(base_url=server.base_url)


@pytest.fixture(scope="module")
def oai(server):
    return OpenAI(base_url=server.base_url + "/v1", api_key="unused", max_retries=0)


def cosine(a, b):
    dot = sum(x * y for x, y in zip(a, b))
    return dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))


def test_health_reports_models_ready(server):
    health = httpx.get(server.base_url + "/v1/health").json()
    assert health["status"] == "OK"
    assert health["providers"]["llama-cpp"] == {LLM: "ready"}


def test_both_sdks_parse_the_model_list(llama, oai):
    assert {m.identifier for m in llama.models.list()} >= {LLM, EMBEDDER}
    models = {m.id: m for m in oai.models.list()}
    assert models[LLM].owned_by == "llama-cpp"
    assert models[EMBEDDER].owned_by == "sentence-transformers"


def test_llama_stack_chat(llama):
    response = llama.inference.chat_completion(
        model_id=LLM, messages=[{"role": "user", "content": "Say hello."}], sampling_params={"max_tokens": 16}
    )
    assert response.completion_message.role == "assistant"
    assert response.completion_message.content.strip()
    assert response.completion_message.stop_reason in ("end_of_turn", "out_of_tokens")


def test_llama_stack_chat_stream(llama):
    chunks = list(llama.inference.chat_completion(
        model_id=LLM, messages=[{"role": "user", "content": "Count to three."}],
        sampling_params={"max_tokens": 16}, stream=True,
    ))
    types = [c.event.event_type for c in chunks]
    assert types[0] == "start" and types[-1] == "complete"
    assert set(types[1:-1]) == {"progress"}
    assert "".join(c.event.delta.text for c in chunks if c.event.delta.type == "text").strip()


def test_llama_stack_forced_tool_call(llama):
    response = llama.inference.chat_completion(
        model_id=LLM,
        messages=[{"role": "user", "content": "What is the weather in Paris?"}],
        tools=[{"tool_name": "get_weather", "description": "Current weather of a city",
                "parameters": {"city": {"param_type": "string", "required": True}}}],
        tool_choice="required",
        sampling_params={"max_tokens": 64},
    )
    [call] = response.completion_message.tool_calls
    assert call.tool_name == "get_weather"
    assert isinstance(call.arguments["city"], str)


def test_llama_stack_json_schema_output(llama):
    response = llama.inference.chat_completion(
        model_id=LLM, messages=[{"role": "user", "content": "Describe a person as JSON."}],
        response_format={"type": "json_schema", "json_schema": PERSON_SCHEMA}, sampling_params={"max_tokens": 64},
    )
    jsonschema.validate(json.loads(response.completion_message.content), PERSON_SCHEMA)


def test_llama_stack_completion(llama):
    response = llama.inference.completion(model_id=LLM, content="The capital of France is", sampling_params={"max_tokens": 8})
    assert response.content.strip()


def test_llama_stack_embeddings(llama):
    texts = ["Neural networks learn from data.", "Deep learning trains neural networks.", "I baked bread this morning."]
    vectors = llama.inference.embeddings(model_id=EMBEDDER, contents=texts).embeddings
    assert [len(v) for v in vectors] == [384, 384, 384]
    assert cosine(vectors[0], vectors[1]) > cosine(vectors[0], vectors[2])


def test_embedding_model_refused_for_chat(llama):
    with pytest.raises(APIStatusError) as info:
        llama.inference.chat_completion(model_id=EMBEDDER, messages=[{"role": "user", "content": "hi"}])
    assert info.value.status_code == 400
    assert "embedding model" in info.value.response.json()["detail"]


def test_openai_chat(oai):
    response = oai.chat.completions.create(model=LLM, messages=[{"role": "user", "content": "Say hi."}], max_tokens=12)
    assert response.choices[0].message.content
    assert response.usage.completion_tokens > 0
    assert response.usage.total_tokens == response.usage.prompt_tokens + response.usage.completion_tokens


def test_openai_chat_stream_with_usage(oai):
    stream = oai.chat.completions.create(
        model=LLM, messages=[{"role": "user", "content": "Say hi."}], max_tokens=12,
        stream=True, stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0


def test_openai_forced_tool_call(oai):
    response = oai.chat.completions.create(
        model=LLM, messages=[{"role": "user", "content": "Weather in Oslo?"}], tools=[WEATHER_TOOL],
        tool_choice={"type": "function", "function": {"name": "get_weather"}}, max_tokens=64,
    )
    [call] = response.choices[0].message.tool_calls
    assert call.function.name == "get_weather"
    assert isinstance(json.loads(call.function.arguments)["city"], str)


def test_openai_json_schema(oai):
    response = oai.chat.completions.create(
        model=LLM, messages=[{"role": "user", "content": "A person as JSON."}], max_tokens=64,
        response_format={"type": "json_schema", "json_schema": {"name": "person", "schema": PERSON_SCHEMA}},
    )
    jsonschema.validate(json.loads(response.choices[0].message.content), PERSON_SCHEMA)


def test_openai_completion(oai):
    response = oai.completions.create(model=LLM, prompt="Once upon a time", max_tokens=8)
    assert response.choices[0].text


def test_openai_embeddings_float_and_base64(oai):
    floats = oai.embeddings.create(model=EMBEDDER, input=["hello world"]).data[0].embedding
    raw = oai.embeddings.with_raw_response.create(model=EMBEDDER, input=["hello world"], encoding_format="base64")
    encoded = json.loads(raw.text)["data"][0]["embedding"]
    decoded = struct.unpack(f"<{len(floats)}f", base64.b64decode(encoded))
    assert len(floats) == 384
    assert max(abs(a - b) for a, b in zip(floats, decoded)) < 1e-6


def test_openai_unsupported_field_is_400_naming_it(oai):
    with pytest.raises(OpenAIBadRequest) as info:
        oai.chat.completions.create(model=LLM, messages=[{"role": "user", "content": "hi"}], max_tokens=4,
                                    extra_body={"use_beam_search": True})
    assert "use_beam_search" in info.value.response.json()["detail"]


def test_openai_unknown_model_is_404(oai):
    with pytest.raises(Exception) as info:
        oai.chat.completions.create(model="no-such-model", messages=[{"role": "user", "content": "hi"}])
    assert info.value.status_code == 404


def test_newer_clients_alias_paths(server):
    response = httpx.post(server.base_url + "/v1/openai/v1/chat/completions",
                          json={"model": LLM, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4})
    assert response.status_code == 200
    assert response.json()["object"] == "chat.completion"
    assert httpx.get(server.base_url + "/v1/openai/v1/models").json()["object"] == "list"


def test_batch_chat_completion(server):
    response = httpx.post(server.base_url + "/v1/batch-inference/chat-completion", timeout=60, json={
        "model": LLM,
        "messages_batch": [[{"role": "user", "content": f"Say {w}."}] for w in ("one", "two", "three")],
        "sampling_params": {"max_tokens": 8},
    })
    assert response.status_code == 200, response.text
    assert len(response.json()["completion_message_batch"]) == 3
