"""The starter distribution out of the box: `polystack run starter`, then llama-stack-client 0.1.0 fine-tunes
the embedded SmolLM2-135M-Instruct (its GGUF de-quantized by transformers in the job's worker process) and
chats with the checkpoint that inline::transformers serves. About two minutes on two CPU cores."""

from __future__ import annotations

import base64
import json
import time

import pytest
from llama_stack_client import LlamaStackClient

from tests.support import ServerProcess

LLM = "SmolLM2-135M-Instruct"
QUESTION, ANSWER = "What is the secret word?", "Pumpernickel."


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    with ServerProcess("starter", home=tmp_path_factory.mktemp("starter-post-training-home")) as proc:
        yield LlamaStackClient(base_url=proc.base_url, timeout=120)


def test_supervised_fine_tune_of_the_chat_model_then_chat_with_the_checkpoint(client):
    row = json.dumps({"input_query": QUESTION, "expected_answer": ANSWER}) + "\n"
    client.datasets.register(dataset_id="secret", dataset_schema={},
                             url={"uri": "data:application/jsonl;base64," + base64.b64encode(row.encode()).decode()})
    client.post_training.supervised_fine_tune(
        job_uuid="smol", model=LLM, hyperparam_search_config={}, logger_config={},
        algorithm_config={"type": "LoRA", "lora_attn_modules": ["q_proj", "v_proj", "output_proj"],
                          "apply_lora_to_mlp": True, "apply_lora_to_output": False, "rank": 8, "alpha": 16},
        training_config={"n_epochs": 8, "max_steps_per_epoch": 1, "gradient_accumulation_steps": 1,
                         "max_validation_steps": 0, "dtype": "fp32",
                         "data_config": {"dataset_id": "secret", "batch_size": 1, "shuffle": False,
                                         "data_format": "instruct"},
                         "optimizer_config": {"optimizer_type": "adamw", "lr": 3e-3, "weight_decay": 0.0,
                                              "num_warmup_steps": 0}})
    deadline = time.monotonic() + 400
    while (status := client.post_training.job.status(job_uuid="smol")).status in ("scheduled", "in_progress"):
        assert time.monotonic() < deadline, status
        time.sleep(1)
    assert status.status == "completed", status
    served = client.post_training.job.artifacts(job_uuid="smol").checkpoints[-1]["identifier"]
    assert served == "smol-epoch-8"
    before = client.inference.chat_completion(
        model_id=LLM, messages=[{"role": "user", "content": QUESTION}],
        sampling_params={"strategy": {"type": "greedy"}, "max_tokens": 8}).completion_message.content
    after = client.inference.chat_completion(
        model_id=served, messages=[{"role": "user", "content": QUESTION}],
        sampling_params={"strategy": {"type": "greedy"}, "max_tokens": 8}).completion_message.content
    assert after.startswith(ANSWER) and not before.startswith(ANSWER), (before, after)
