"""Every run config the project ships or promises to load -- distributions/*/run.yaml, llama-stack
0.1.0's reference configs in shared/reference/ and the templates in tests/fixtures/llama_stack_templates/
-- starts with its env vars pointed at test doubles, is healthy and answers a chat.

Configs whose services are doubles start here, in-process. Configs that run real local models
(the embedded distributions, the Meta-format checkpoint) or need a database server are started by
the test named for them, which already pays for that start-up; the list says why, and a test below
checks the named test exists, so a config cannot drop out of coverage unnoticed.
"""

from __future__ import annotations

import asyncio
import importlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.distributions.test_llama_stack_templates import (
    CHAT_MODEL as SERVICE_TEMPLATES,
)
from tests.providers.remote.inference.doubles import FakeOllama, FakeOpenAIUpstream
from tests.support import (
    FIXTURES,
    REPO,
    app_from_yaml,
    build_tiny_meta_llama,
    serve_app,
    shared_path,
)

TEMPLATES = REPO / "tests" / "fixtures" / "llama_stack_templates"
LLAMA_8B = "meta-llama/Llama-3.1-8B-Instruct"


def run_configs() -> dict[str, Path]:
    """Every run config, keyed by where it lives."""
    found = {f"distributions/{p.parent.name}": p for p in (REPO / "distributions").glob("*/run.yaml")}
    found |= {f"reference/{p.name}": p for p in shared_path("reference", "llama-stack-0.1.0-run-configs").glob("*.yaml")}
    found |= {f"templates/{p.name}": p for p in TEMPLATES.glob("*.yaml")}
    return found


@dataclass(frozen=True)
class Here:
    """Started by this module: the double, the env a user would set (``{url}``: the double's), the chat."""

    double: type | None
    env: dict[str, str]
    model: str
    #: the start of the answer to "Say hello"
    answer: str = "Hello from the test double"
    #: a service URL written as a literal in the file (no env var to set), replaced by the double's
    literal_url: str | None = None
    #: ``setup(monkeypatch, tmp_path)`` before start-up (a local engine's double and weights)
    setup: Callable | None = None
    #: a provider that loads ``model`` in the background: wait for its health to say ready
    loads_in: str | None = None


def vllm_double_and_weights(monkeypatch, tmp_path: Path) -> None:
    """The vLLM test double importable here and in the engine's child process; a tiny Meta checkpoint."""
    double = FIXTURES / "vllm_double"
    monkeypatch.syspath_prepend(str(double))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(double), os.environ.get("PYTHONPATH", "")]))
    monkeypatch.setenv("VLLM_DOUBLE_RECORD", str(tmp_path / "argv.json"))
    monkeypatch.setenv("LLAMA_STACK_CONFIG_DIR", str(tmp_path / "llama"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    build_tiny_meta_llama(tmp_path / "llama" / "checkpoints" / "Llama3.2-3B-Instruct")


@dataclass(frozen=True)
class Elsewhere:
    """Started and chatted with by ``test`` ("module::function[param]"), for ``reason``."""

    test: str
    reason: str


OLLAMA_TAG = "llama3.2:latest"  # a model FakeOllama has pulled

COVERAGE: dict[str, Here | Elsewhere] = {
    "distributions/ollama": Here(FakeOllama, {"OLLAMA_URL": "{host}", "INFERENCE_MODEL": OLLAMA_TAG}, OLLAMA_TAG,
                                 answer="Hello! How are you today?"),
    "distributions/openai": Here(FakeOpenAIUpstream, {"OPENAI_BASE_URL": "{url}", "OPENAI_API_KEY": "sk-test",
                                                      "INFERENCE_MODEL": "gpt-4o-mini"}, "gpt-4o-mini"),
    "distributions/remote-vllm": Here(FakeOpenAIUpstream, {"VLLM_URL": "{url}", "INFERENCE_MODEL": LLAMA_8B}, LLAMA_8B),
    "reference/remote-vllm-run.yaml": Here(FakeOpenAIUpstream, {"VLLM_URL": "{url}", "INFERENCE_MODEL": LLAMA_8B,
                                                                "SAFETY_MODEL": "meta-llama/Llama-Guard-3-1B"},
                                           LLAMA_8B),
    "reference/together-run.yaml": Here(FakeOpenAIUpstream, {"TOGETHER_API_KEY": "together-test"}, LLAMA_8B,
                                        literal_url="https://api.together.xyz/v1"),
    "reference/ollama-run.yaml": Elsewhere(
        "tests/providers/remote/inference/test_ollama_aliases.py::test_llama_stack_ollama_run_yaml_chats_through_the_alias",
        "started there against FakeOllama, with its Llama-id-to-Ollama-tag checks"),
    "reference/ollama-run-with-safety.yaml": Elsewhere(
        "tests/providers/remote/inference/test_ollama_aliases.py::test_llama_stack_ollama_run_yaml_chats_through_the_alias",
        "started there against FakeOllama, with its Llama Guard shield"),
    "reference/meta-reference-gpu-run.yaml": Elsewhere(
        "tests/providers/inline/inference/test_meta_reference.py::test_the_meta_reference_gpu_reference_config_starts_and_chats",
        "runs a tiny Meta-format Llama checkpoint on the CPU as a server process (no GPU-only package; "
        "the CUDA path is not verified in this project)"),
    "distributions/starter": Elsewhere(
        "tests/e2e/test_starter_inference.py::test_llama_stack_chat",
        "real embedded models (SmolLM2 GGUF on llama.cpp, MiniLM); the e2e module starts it once for 19 tests"),
    "distributions/local-gpu": Elsewhere(
        "tests/e2e/test_local_gpu_distribution.py::test_llama_stack_chat",
        "inline::transformers on the CPU when there is no GPU (not verified on a GPU in this project)"),
    "distributions/postgres": Elsewhere(
        "tests/e2e/test_postgres_distribution.py::test_state_lives_in_postgres_not_on_local_disk",
        "needs a PostgreSQL server (pgserver) and the embedded models; its test runs an agent turn"),
}
for _template in sorted(SERVICE_TEMPLATES):
    COVERAGE[f"templates/{_template}.yaml"] = Elsewhere(
        f"tests/distributions/test_llama_stack_templates.py::test_template_starts_and_answers_a_chat[{_template}]",
        "the templates of hosted services start there, each against the double of its service")
# vLLM needs a GPU: its test double (tests/fixtures/vllm_double) stands in for the package
COVERAGE["templates/vllm-gpu-run.yaml"] = Here(
    None, {"INFERENCE_MODEL": "meta-llama/Llama-3.2-3B-Instruct", "MAX_MODEL_LEN": "2048"},
    "meta-llama/Llama-3.2-3B-Instruct", answer="echo: Say hello", setup=vllm_double_and_weights, loads_in="vllm")

HERE = sorted(name for name, case in COVERAGE.items() if isinstance(case, Here))


def test_every_run_config_is_covered():
    assert set(run_configs()) == set(COVERAGE)


@pytest.mark.parametrize("name", sorted(n for n, c in COVERAGE.items() if isinstance(c, Elsewhere)))
def test_the_test_named_for_a_config_exists(name):
    path, _, function = COVERAGE[name].test.partition("::")
    function, _, param = function.partition("[")
    module = importlib.import_module(path.removesuffix(".py").replace("/", "."))
    assert callable(getattr(module, function, None)), COVERAGE[name].test
    if param:  # the templates' test is parametrized by the names in its CHAT_MODEL table
        assert param.rstrip("]") in module.CHAT_MODEL


@pytest.fixture
async def started(request, monkeypatch, tmp_path):
    """The stack of config ``request.param``, its env pointed at a fresh double; yields (client, double)."""
    name = request.param
    case = COVERAGE[name]
    if case.setup is not None:
        case.setup(monkeypatch, tmp_path)
    double = await case.double().start() if case.double is not None else None
    url = "" if double is None else double.url if double.url.endswith("/v1") else f"{double.url}/v1"
    host = url.removesuffix("/v1")
    env = {key: value.format(url=url, host=host) for key, value in case.env.items()}
    for key, value in {**env, "POLYSTACK_HOME": str(tmp_path), "SQLITE_STORE_DIR": str(tmp_path / "store"),
                       "SQLITE_DB_PATH": str(tmp_path / "trace.db"), "POLYSTACK_PORT": "8321"}.items():
        monkeypatch.setenv(key, value)
    text = run_configs()[name].read_text()
    if case.literal_url is not None:
        assert case.literal_url in text
        text = text.replace(case.literal_url, url)
    try:
        async with serve_app(app_from_yaml(tmp_path, text)) as client:
            yield client, case
    finally:
        if double is not None:
            await double.stop()


async def ready(client, case: Here, timeout: float = 120.0) -> None:
    """Wait until ``case.loads_in`` reports its model ready (a local engine loads after start-up)."""
    deadline = time.monotonic() + timeout
    while case.loads_in is not None:
        state = (await client.get("/v1/health")).json()["providers"][case.loads_in].get(case.model, "")
        if state == "ready":
            return
        assert not state.startswith("error") and time.monotonic() < deadline, state
        await asyncio.sleep(0.1)


@pytest.mark.parametrize("started", HERE, indirect=True)
async def test_the_config_is_healthy_and_answers_a_chat(started):
    client, case = started
    await ready(client, case)
    health = await client.get("/v1/health")
    chat = await client.post("/v1/inference/chat-completion", json={
        "model_id": case.model, "messages": [{"role": "user", "content": "Say hello"}]})
    assert health.status_code == 200 and health.json()["status"] == "OK", health.text
    assert chat.status_code == 200, chat.text
    assert chat.json()["completion_message"]["content"].startswith(case.answer)
