"""A request that sets no length gets the model's default_max_tokens: a real `polystack run`
of the starter driven by llama-stack-client 0.1.0 (which sends max_tokens 0 when none is given)
and openai. Without the default, SmolLM2 answered "Say hello." by repeating one sentence until
its 4096-token context was full."""

from __future__ import annotations

import pytest
from llama_stack_client import APIStatusError

from tests.support import ServerProcess

LLM = "SmolLM2-135M-Instruct"
HELLO = [{"role": "user", "content": "Say hello."}]
STARTER_DEFAULT = 512  # inline::llama-cpp's default_max_tokens, which the starter keeps


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with ServerProcess("starter", home=tmp_path_factory.mktemp("default-length-home")) as proc:
        yield proc


@pytest.fixture(scope="module")
def short_model(llama):
    """The starter's SmolLM2 registered once more, with a default of 8 tokens."""
    llama.models.register(model_id="smol-8", provider_model_id=LLM, provider_id="llama-cpp", model_type="llm",
                          metadata={"default_max_tokens": 8})
    return "smol-8"


def test_say_hello_without_max_tokens_answers_within_the_default(llama):
    response = llama.inference.chat_completion(model_id=LLM, messages=HELLO, logprobs={"top_k": 1})
    message = response.completion_message
    assert message.content.strip()
    assert 0 < len(response.logprobs) <= STARTER_DEFAULT  # one entry per generated token
    # the greedy repetition penalty lets the model finish its answer instead of looping
    assert message.stop_reason == "end_of_turn"


def test_the_models_default_caps_every_route(llama, oai, short_model):
    chat = llama.inference.chat_completion(model_id=short_model, messages=HELLO, logprobs={"top_k": 1},
                                           sampling_params={"strategy": {"type": "greedy"}, "repetition_penalty": 1.0})
    assert chat.completion_message.stop_reason == "out_of_tokens" and len(chat.logprobs) == 8
    streamed = list(llama.inference.chat_completion(model_id=short_model, messages=HELLO, stream=True,
                                                    logprobs={"top_k": 1}))
    assert streamed[-1].event.stop_reason == "out_of_tokens"
    assert sum(len(c.event.logprobs or []) for c in streamed) == 8
    completion = llama.inference.completion(model_id=short_model, content="Once upon a time", logprobs={"top_k": 1})
    assert completion.stop_reason == "out_of_tokens" and len(completion.logprobs) == 8
    # greedy, like the calls above: sampled, SmolLM2 sometimes says hello and stops within 8 tokens
    openai_chat = oai.chat.completions.create(model=short_model, messages=HELLO, temperature=0,
                                              extra_body={"repetition_penalty": 1.0})
    assert openai_chat.choices[0].finish_reason == "length" and openai_chat.usage.completion_tokens == 8
    # a length the client sets wins over the default
    longer = oai.chat.completions.create(model=short_model, messages=HELLO, max_tokens=12, temperature=0,
                                         extra_body={"repetition_penalty": 1.0})
    assert longer.usage.completion_tokens == 12


def test_a_default_larger_than_the_room_left_is_cut_not_a_400(llama):
    # cut to the 4096-token context by the router, then to what the prompt leaves by llama-cpp
    llama.models.register(model_id="smol-huge", provider_model_id=LLM, provider_id="llama-cpp", model_type="llm",
                          metadata={"default_max_tokens": 100_000})
    response = llama.inference.chat_completion(model_id="smol-huge", messages=HELLO)
    assert response.completion_message.stop_reason == "end_of_turn"
    # the same length asked by the client does not fit after the prompt: a 400 naming the field
    with pytest.raises(APIStatusError) as info:
        llama.inference.chat_completion(model_id="smol-huge", messages=HELLO, sampling_params={"max_tokens": 4096})
    assert info.value.status_code == 400
    assert info.value.response.json()["detail"].startswith("max_tokens: 4096 tokens asked")


@pytest.mark.parametrize("value", [0, "lots", -1])
def test_a_bad_default_is_a_400_naming_the_field(llama, value):
    with pytest.raises(APIStatusError) as info:
        llama.models.register(model_id="smol-bad", provider_model_id=LLM, provider_id="llama-cpp",
                              model_type="llm", metadata={"default_max_tokens": value})
    assert info.value.status_code == 400
    assert info.value.response.json()["detail"].startswith("metadata.default_max_tokens: ")
