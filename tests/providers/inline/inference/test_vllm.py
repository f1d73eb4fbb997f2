"""inline::vllm: llama-stack 0.1.0's config, the start-up error without the vllm package, and the
engine's life (weights found or converted, flags, serving, failing, stopping) against the vLLM test
double in tests/fixtures/vllm_double (real vLLM needs a GPU and was not run here)."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import re
import time

import pytest
from pydantic import ValidationError

from providers.inline.inference.vllm import VLLMConfig, create
from stack.errors import ConfigError
from stack.registry import ProviderContext
from tests.support import FIXTURES, REPO, app_from_yaml, build_tiny_llama, build_tiny_meta_llama, serve_app

DOUBLE = FIXTURES / "vllm_double"
# llama-stack 0.1.0's vllm-gpu template, with its env defaults substituted
TEMPLATE = {"model": "Llama3.2-3B-Instruct", "tensor_parallel_size": "1", "max_tokens": "4096",
            "max_model_len": "4096", "max_num_seqs": "4", "enforce_eager": "False", "gpu_memory_utilization": "0.7"}


def test_the_vllm_gpu_templates_config_validates_and_bad_values_name_the_field():
    config = VLLMConfig.model_validate(TEMPLATE)
    assert (config.enforce_eager, config.gpu_memory_utilization, config.max_num_seqs) == (False, 0.7, 4)
    for bad, field in [({"gpu_memory_utilization": 1.5}, "gpu_memory_utilization"),
                       ({"tensor_parallel_size": 0}, "tensor_parallel_size"), ({"swap_space": 4}, "swap_space")]:
        with pytest.raises(ValidationError, match=field):
            VLLMConfig.model_validate({**TEMPLATE, **bad})


def test_every_config_key_has_a_row_in_the_docs():
    doc = (REPO / "docs" / "providers" / "vllm.md").read_text()
    rows = set(re.findall(r"^\|\s*`([^`]+)`\s*\|", doc, re.MULTILINE))
    assert [k for k in VLLMConfig.model_fields if k not in rows] == []


@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vllm is installed here")
async def test_without_the_vllm_package_start_up_fails_naming_it(tmp_path, monkeypatch):
    with pytest.raises(ConfigError, match=r"\(inline::vllm\) needs the vllm package, which is not installed"):
        await create(VLLMConfig(), ProviderContext(provider_id="vllm", spec=None, image_name="t", data_dir=tmp_path))
    monkeypatch.setenv("POLYSTACK_HOME", str(tmp_path / "home"))
    app = app_from_yaml(tmp_path, """\
        version: '2'
        image_name: vllm-gpu
        apis: [inference]
        providers:
          inference:
          - {provider_id: vllm, provider_type: inline::vllm, config: {model: Llama3.2-3B-Instruct}}
        """)
    with pytest.raises(ConfigError, match="pip install vllm"):
        async with app.router.lifespan_context(app):
            pass


@pytest.fixture
def double(tmp_path, monkeypatch):
    """The vLLM test double importable here and in the engine's child process; weights under ~/.llama."""
    monkeypatch.syspath_prepend(str(DOUBLE))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(DOUBLE), os.environ.get("PYTHONPATH", "")]))
    monkeypatch.setenv("VLLM_DOUBLE_RECORD", str(tmp_path / "argv.json"))
    monkeypatch.setenv("LLAMA_STACK_CONFIG_DIR", str(tmp_path / "llama"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("POLYSTACK_HOME", str(tmp_path / "home"))
    return tmp_path


def _stack(tmp_path, model="meta-llama/Llama-3.2-3B-Instruct"):
    return app_from_yaml(tmp_path, f"""\
        version: '2'
        image_name: vllm-gpu
        apis: [inference]
        providers:
          inference:
          - provider_id: vllm
            provider_type: inline::vllm
            config: {{model: {model}, max_tokens: 7, max_model_len: 2048, enforce_eager: true,
                      gpu_memory_utilization: 0.5, tensor_parallel_size: 2}}
        models:
        - {{model_id: {model}, provider_id: vllm}}
        """)


async def _state(client, model="meta-llama/Llama-3.2-3B-Instruct", want=("ready",), timeout=60.0):
    deadline = time.monotonic() + timeout
    while (state := (await client.get("/v1/health")).json()["providers"]["vllm"][model]).split(":")[0] not in want:
        assert time.monotonic() < deadline, state
        await asyncio.sleep(0.1)
    return state


async def test_a_meta_checkpoint_is_converted_and_served_through_vllms_api(double):
    build_tiny_meta_llama(double / "llama" / "checkpoints" / "Llama3.2-3B-Instruct")
    async with serve_app(_stack(double)) as client:
        await _state(client)
        argv = json.loads((double / "argv.json").read_text())
        weights = argv[argv.index("--model") + 1]
        assert weights == str(double / "home" / "vllm-gpu" / "meta-reference" / "Llama3.2-3B-Instruct")
        assert os.path.isfile(os.path.join(weights, "config.json"))
        flags = " ".join(argv)
        assert "--tensor-parallel-size 2 --max-model-len 2048 --max-num-seqs 4 --gpu-memory-utilization 0.5 " \
               "--enforce-eager" in flags
        assert "--served-model-name meta-llama/Llama-3.2-3B-Instruct Llama3.2-3B-Instruct" in flags
        chat = await client.post("/v1/chat/completions", json={
            "model": "meta-llama/Llama-3.2-3B-Instruct", "messages": [{"role": "user", "content": "hi"}]})
        assert chat.status_code == 200, chat.text
        assert chat.json()["choices"][0]["message"]["content"] == "echo: hi (max_tokens=7)"  # the config's max_tokens
        llama = await client.post("/v1/inference/chat-completion", json={
            "model_id": "meta-llama/Llama-3.2-3B-Instruct", "messages": [{"role": "user", "content": "cat"}]})
        assert llama.status_code == 200 and llama.json()["completion_message"]["content"].startswith("echo: cat")
        other = await client.post("/v1/models", json={"model_id": "Llama3.1-8B-Instruct", "provider_id": "vllm"})
        assert other.status_code == 400 and "provider_model_id" in other.text
        provider = next(p.impl for p in client.app.state.stack.providers if p.provider_id == "vllm")
        assert provider.engine._proc.returncode is None
    assert provider.engine._proc.returncode is not None  # stopped with the stack


async def test_hf_weights_are_passed_as_they_are(double):
    build_tiny_llama(double / "llama" / "checkpoints" / "Llama3.2-3B-Instruct")
    async with serve_app(_stack(double)) as client:
        await _state(client)
        argv = json.loads((double / "argv.json").read_text())
        assert argv[argv.index("--model") + 1] == str(double / "llama" / "checkpoints" / "Llama3.2-3B-Instruct")


async def test_missing_weights_are_404s_naming_the_places_and_never_stop_start_up(double):
    async with serve_app(_stack(double)) as client:
        state = await _state(client, want=("error",))
        assert "no Llama checkpoint" in state
        chat = await client.post("/v1/chat/completions", json={
            "model": "meta-llama/Llama-3.2-3B-Instruct", "messages": [{"role": "user", "content": "hi"}]})
        assert chat.status_code == 404
        assert str(double / "llama" / "checkpoints" / "Llama3.2-3B-Instruct") in chat.json()["detail"]
    assert not (double / "argv.json").exists()  # vLLM was never started


async def test_a_failing_engine_is_a_500_with_the_end_of_its_output(double, monkeypatch):
    monkeypatch.setenv("VLLM_DOUBLE_FAIL", "torch.OutOfMemoryError: CUDA out of memory")
    build_tiny_llama(double / "llama" / "checkpoints" / "Llama3.2-3B-Instruct")
    async with serve_app(_stack(double)) as client:
        state = await _state(client, want=("error",))
        assert "vLLM exited with code 1" in state and "CUDA out of memory" in state
        chat = await client.post("/v1/chat/completions", json={
            "model": "meta-llama/Llama-3.2-3B-Instruct", "messages": [{"role": "user", "content": "hi"}]})
        assert chat.status_code == 500 and "CUDA out of memory" in chat.json()["detail"]
