"""Post-training end to end: ``polystack run`` with inline::huggingface, inline::transformers and
inline::localfs, driven by llama-stack-client 0.1.0: a LoRA fine-tune of a tiny Llama built here,
its status and artifacts, then a chat with the checkpoint the job registered."""

from __future__ import annotations

import json
import textwrap
import time

import pytest
from llama_stack_client import BadRequestError, LlamaStackClient

from tests.support import ServerProcess, build_tiny_llama

ANSWER = "green tree"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    home = tmp_path_factory.mktemp("post-training-home")
    data = tmp_path_factory.mktemp("post-training-data")
    tiny = build_tiny_llama(tmp_path_factory.mktemp("tiny-llama"))
    (data / "qa.jsonl").write_text(json.dumps({"input_query": "the lazy dog", "expected_answer": ANSWER}) + "\n")
    run_yaml = home / "run.yaml"
    run_yaml.write_text(textwrap.dedent(f"""\
        version: '2'
        image_name: post-training-e2e
        apis: [inference, datasetio, post_training]
        providers:
          inference:
          - provider_id: transformers
            provider_type: inline::transformers
            config:
              models:
                tiny: {{path: {tiny.path}}}
          datasetio:
          - provider_id: localfs
            provider_type: inline::localfs
            config: {{}}
          post_training:
          - provider_id: huggingface
            provider_type: inline::huggingface
            config: {{}}
        server:
          fetch:
            allow_dirs: [{data}]
        models:
        - model_id: tiny
          provider_id: transformers
        """))
    with ServerProcess(str(run_yaml), home=home) as proc:
        proc.data = data
        yield proc


def test_fine_tune_with_llama_stack_client_then_chat_with_the_checkpoint(server):
    client = LlamaStackClient(base_url=server.base_url, timeout=60)
    client.datasets.register(dataset_id="qa", url={"uri": f"file://{server.data}/qa.jsonl"},
                             dataset_schema={"input_query": {"type": "string"}, "expected_answer": {"type": "string"}})
    training_config = {
        "n_epochs": 1, "max_steps_per_epoch": 20, "gradient_accumulation_steps": 1, "max_validation_steps": 1,
        "data_config": {"dataset_id": "qa", "batch_size": 1, "shuffle": False, "data_format": "instruct"},
        "optimizer_config": {"optimizer_type": "adam", "lr": 0.02, "weight_decay": 0.0, "num_warmup_steps": 0},
    }
    lora = {"type": "LoRA", "lora_attn_modules": ["q_proj", "k_proj", "v_proj", "output_proj"],
            "apply_lora_to_mlp": True, "apply_lora_to_output": False, "rank": 8, "alpha": 16}
    with pytest.raises(BadRequestError, match="training_config.data_config.dataset_id"):
        client.post_training.supervised_fine_tune(
            job_uuid="bad", model="tiny", algorithm_config=lora, hyperparam_search_config={}, logger_config={},
            training_config={**training_config, "data_config": {**training_config["data_config"], "dataset_id": "nope"}})

    # one row, 1 step an epoch: 10 epochs of it, a checkpoint each
    job = client.post_training.supervised_fine_tune(
        job_uuid="e2e-sft", model="tiny", algorithm_config=lora, hyperparam_search_config={}, logger_config={},
        training_config={**training_config, "n_epochs": 10})
    assert job.job_uuid == "e2e-sft"
    deadline = time.monotonic() + 120
    while (status := client.post_training.job.status(job_uuid="e2e-sft")).status in ("scheduled", "in_progress"):
        assert time.monotonic() < deadline, status
        time.sleep(0.2)
    assert status.status == "completed", status
    assert status.started_at <= status.completed_at and status.resources_allocated["device"] == "cpu"
    artifacts = client.post_training.job.artifacts(job_uuid="e2e-sft")
    assert [c["epoch"] for c in artifacts.checkpoints] == list(range(1, 11))
    losses = [c["training_metrics"]["train_loss"] for c in artifacts.checkpoints]
    assert losses[-1] < losses[0] / 2, losses
    served = artifacts.checkpoints[-1]["identifier"]
    assert served == "e2e-sft-epoch-10" and [j.job_uuid for j in client.post_training.job.list()] == ["e2e-sft"]
    assert served in [m.identifier for m in client.models.list()]
    reply = client.inference.chat_completion(
        model_id=served, messages=[{"role": "user", "content": "the lazy dog"}],
        sampling_params={"strategy": {"type": "greedy"}, "max_tokens": 6})
    assert reply.completion_message.content.startswith(ANSWER)
