"""inline::torchtune: llama-stack 0.1.0's experimental-post-training template config fine-tunes on the
inline::huggingface machinery, on CPU, a tiny Llama served by inline::meta-reference (Meta's format)."""

from __future__ import annotations

import asyncio
import json
import re
import time

import pytest
from pydantic import ValidationError

from providers.inline.post_training.huggingface import TorchtunePostTrainingConfig, register_providers
from tests.support import REPO, app_from_yaml, build_tiny_meta_llama, serve_app

MODEL = "meta-llama/Llama-3.1-8B-Instruct"
ANSWER = "blue river"


def test_config_is_llama_stacks_and_translates_its_seed():
    assert TorchtunePostTrainingConfig().checkpoint_format == "meta"
    assert TorchtunePostTrainingConfig(torch_seed=5, checkpoint_format="huggingface").huggingface_config().seed == 5
    assert TorchtunePostTrainingConfig().huggingface_config().seed == 0
    with pytest.raises(ValidationError, match="checkpoint_format"):
        TorchtunePostTrainingConfig(checkpoint_format="gguf")
    with pytest.raises(ValidationError, match="extra"):
        TorchtunePostTrainingConfig.model_validate({"model": "Llama3.2-3B-Instruct"})


def test_registered_from_the_huggingface_package_and_documented():
    specs = []
    register_providers(specs.append)
    assert [s.provider_type for s in specs] == ["inline::huggingface", "inline::torchtune"]
    doc = (REPO / "docs" / "providers" / "torchtune.md").read_text()
    rows = set(re.findall(r"^\|\s*`([^`]+)`\s*\|", doc, re.MULTILINE))
    assert [k for k in TorchtunePostTrainingConfig.model_fields if k not in rows] == []


async def test_the_experimental_post_training_template_fine_tunes(tmp_path, monkeypatch):
    checkpoint = build_tiny_meta_llama(tmp_path / "Llama3.1-8B-Instruct")
    monkeypatch.setenv("POLYSTACK_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("INFERENCE_MODEL", MODEL)
    monkeypatch.setenv("INFERENCE_CHECKPOINT_DIR", checkpoint.path)
    data = tmp_path / "data"
    data.mkdir()
    (data / "qa.jsonl").write_text((json.dumps({"input_query": "the quick brown fox", "expected_answer": ANSWER})
                                    + "\n") * 24)
    (data / "pairs.jsonl").write_text((json.dumps({"prompt": "the cat", "chosen": ANSWER, "rejected": "lazy dog"})
                                       + "\n") * 4)
    # the template's inference and post_training entries as llama-stack 0.1.0 wrote them
    config = f"""\
        version: '2'
        image_name: experimental-post-training
        apis: [inference, datasetio, post_training]
        providers:
          inference:
          - provider_id: meta-reference-inference
            provider_type: inline::meta-reference
            config:
              max_seq_len: 4096
              checkpoint_dir: ${{env.INFERENCE_CHECKPOINT_DIR:null}}
              create_distributed_process_group: false
          datasetio:
          - provider_id: localfs
            provider_type: inline::localfs
            config: {{}}
          post_training:
          - provider_id: torchtune-post-training
            provider_type: inline::torchtune
            config:
              checkpoint_format: meta
        server:
          fetch:
            allow_dirs: [{data}]
        models:
        - metadata: {{}}
          model_id: ${{env.INFERENCE_MODEL}}
          provider_id: meta-reference-inference
          model_type: llm
        """
    async with serve_app(app_from_yaml(tmp_path, config)) as client:
        deadline = time.monotonic() + 60  # the Meta checkpoint is converted in the background at start-up
        while (await client.get("/v1/health")).json()["providers"]["meta-reference-inference"].get(MODEL) != "ready":
            assert time.monotonic() < deadline
            await asyncio.sleep(0.1)
        for name in ("qa", "pairs"):
            assert (await client.post("/v1/datasets", json={
                "dataset_id": name, "url": {"uri": f"file://{data}/{name}.jsonl"}, "dataset_schema": {}})).status_code == 200
        response = await client.post("/v1/post-training/supervised-fine-tune", json={
            "job_uuid": "tune-1", "model": MODEL, "hyperparam_search_config": {}, "logger_config": {},
            "algorithm_config": {"type": "LoRA", "lora_attn_modules": ["q_proj", "v_proj", "output_proj"],
                                 "apply_lora_to_mlp": True, "apply_lora_to_output": False, "rank": 8, "alpha": 16},
            "training_config": training("qa", steps=12)})
        assert response.status_code == 200, response.text
        status = await finished(client, "tune-1")
        assert status["status"] == "completed", status
        assert [c["identifier"] for c in status["checkpoints"]] == ["tune-1-epoch-1"]

        def chat(model):
            return client.post("/v1/chat/completions", json={
                "model": model, "messages": [{"role": "user", "content": "the quick brown fox"}],
                "temperature": 0, "max_tokens": 12})

        tuned = await chat("tune-1-epoch-1")
        assert tuned.status_code == 200, tuned.text
        assert tuned.json()["choices"][0]["message"]["content"].startswith(ANSWER)  # it learned the answer
        assert not (await chat(MODEL)).json()["choices"][0]["message"]["content"].startswith(ANSWER)

        response = await client.post("/v1/post-training/preference-optimize", json={
            "job_uuid": "dpo-1", "finetuned_model": "tune-1-epoch-1", "hyperparam_search_config": {},
            "logger_config": {}, "algorithm_config": {"reward_scale": 1.0, "reward_clip": 5.0, "epsilon": 0.1,
                                                      "gamma": 0.99},
            "training_config": training("pairs", steps=2, data_format="dialog")})
        assert response.status_code == 200, response.text
        assert (await finished(client, "dpo-1"))["status"] == "completed"
        assert (await chat("dpo-1-epoch-1")).status_code == 200


def training(dataset_id: str, *, steps: int, data_format: str = "instruct") -> dict:
    return {"n_epochs": 1, "max_steps_per_epoch": steps, "gradient_accumulation_steps": 1, "max_validation_steps": 1,
            "dtype": "fp32",
            "data_config": {"dataset_id": dataset_id, "batch_size": 2, "shuffle": True, "data_format": data_format},
            "optimizer_config": {"optimizer_type": "adamw", "lr": 0.02, "weight_decay": 0.0, "num_warmup_steps": 0}}


async def finished(client, job_uuid: str) -> dict:
    deadline = time.monotonic() + 120
    while (status := (await client.get("/v1/post-training/job/status",
                                       params={"job_uuid": job_uuid})).json())["status"] in ("scheduled", "in_progress"):
        assert time.monotonic() < deadline, status
        await asyncio.sleep(0.2)
    return status
