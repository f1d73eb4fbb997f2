"""Post-training end to end: ``polystack run`` with inline::huggingface, inline::transformers and
inline::localfs, driven by llama-stack-client 0.1.0: a LoRA fine-tune of a tiny Llama built here,
its status, artifacts and logs, then a chat with the checkpoint the job registered; and the loop
serve -> log -> train -> serve: trajectories logged through the W&B routes and prompt logs written
by the ``humanloop`` SDK with feedback, exported to datasets and fine-tuned on."""

from __future__ import annotations

import json
import textwrap
import time

import httpx
import pytest
from humanloop import Humanloop
from llama_stack_client import BadRequestError, LlamaStackClient
from llama_stack_client.types.post_training.job_logs_response import JobLogsResponse

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
        apis: [inference, datasetio, post_training, trajectories, prompt_logs]
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
          trajectories:
          - {{provider_id: trajectories, provider_type: inline::sql, config: {{}}}}
          prompt_logs:
          - {{provider_id: prompt-logs, provider_type: inline::sql, config: {{}}}}
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


LORA = {"type": "LoRA", "lora_attn_modules": ["q_proj", "k_proj", "v_proj", "output_proj"],
        "apply_lora_to_mlp": True, "apply_lora_to_output": False, "rank": 8, "alpha": 16}


def training(dataset_id: str, data_format: str, n_epochs: int = 1) -> dict:
    return {
        "n_epochs": n_epochs, "max_steps_per_epoch": 20, "gradient_accumulation_steps": 1, "max_validation_steps": 1,
        "data_config": {"dataset_id": dataset_id, "batch_size": 1, "shuffle": False, "data_format": data_format},
        "optimizer_config": {"optimizer_type": "adam", "lr": 0.02, "weight_decay": 0.0, "num_warmup_steps": 0},
    }


def finished(client: LlamaStackClient, job_uuid: str):
    deadline = time.monotonic() + 120
    while (status := client.post_training.job.status(job_uuid=job_uuid)).status in ("scheduled", "in_progress"):
        assert time.monotonic() < deadline, status
        time.sleep(0.2)
    return status


def reply(client: LlamaStackClient, model_id: str, question: str) -> str:
    return client.inference.chat_completion(
        model_id=model_id, messages=[{"role": "user", "content": question}],
        sampling_params={"strategy": {"type": "greedy"}, "max_tokens": 6}).completion_message.content


def test_fine_tune_with_llama_stack_client_then_chat_with_the_checkpoint(server):
    client = LlamaStackClient(base_url=server.base_url, timeout=60)
    client.datasets.register(dataset_id="qa", url={"uri": f"file://{server.data}/qa.jsonl"},
                             dataset_schema={"input_query": {"type": "string"}, "expected_answer": {"type": "string"}})
    training_config = training("qa", "instruct")
    lora = LORA
    with pytest.raises(BadRequestError, match="training_config.data_config.dataset_id"):
        client.post_training.supervised_fine_tune(
            job_uuid="bad", model="tiny", algorithm_config=lora, hyperparam_search_config={}, logger_config={},
            training_config={**training_config, "data_config": {**training_config["data_config"], "dataset_id": "nope"}})

    # one row, 1 step an epoch: 10 epochs of it, a checkpoint each
    job = client.post_training.supervised_fine_tune(
        job_uuid="e2e-sft", model="tiny", algorithm_config=lora, hyperparam_search_config={}, logger_config={},
        training_config={**training_config, "n_epochs": 10})
    assert job.job_uuid == "e2e-sft"
    status = finished(client, "e2e-sft")
    assert status.status == "completed", status
    assert status.started_at <= status.completed_at and status.resources_allocated["device"] == "cpu"
    artifacts = client.post_training.job.artifacts(job_uuid="e2e-sft")
    assert [c["epoch"] for c in artifacts.checkpoints] == list(range(1, 11))
    losses = [c["training_metrics"]["train_loss"] for c in artifacts.checkpoints]
    assert losses[-1] < losses[0] / 2, losses
    served = artifacts.checkpoints[-1]["identifier"]
    assert served == "e2e-sft-epoch-10" and [j.job_uuid for j in client.post_training.job.list()] == ["e2e-sft"]
    assert served in [m.identifier for m in client.models.list()]
    assert reply(client, served, "the lazy dog").startswith(ANSWER)
    # the training log, as llama-stack 0.1.0's JobLogsResponse: a line a step, then the epoch's summary
    logs = client.get("/v1/post-training/job/logs", cast_to=JobLogsResponse, options={"params": {"job_uuid": "e2e-sft"}})
    steps = [line for line in logs.log_lines if line.startswith("step ")]
    assert len(steps) == 10 and steps[0].startswith("step 1/10 epoch=1 loss=") and "lr=0.02" in steps[0]
    assert status.model_extra["progress_percent"] == 100.0


def test_fine_tune_on_logged_trajectories_and_prompt_logs_with_feedback_then_chat(server):
    client = LlamaStackClient(base_url=server.base_url, timeout=60)
    http = httpx.Client(base_url=server.base_url, timeout=30)

    # rollouts of one scenario, rewarded and logged as W&B Training logs them; exported to a dataset
    run = http.post("/v1/preview/models", json={"base_model": "tiny", "project": "colors", "name": "run-1"}).json()
    answers = [("red sun", 0.0), ("blue river", 1.0), ("lazy dog", 0.2)]
    group = {"trajectories": [{"reward": reward, "messages_and_choices": [
        {"role": "user", "content": "the sky"},
        {"finish_reason": "stop", "index": 0, "message": {"role": "assistant", "content": answer}}]}
        for answer, reward in answers]}
    assert http.post(f"/v1/preview/models/{run['id']}/log",
                     json={"split": "train", "trajectory_groups": [group]}).status_code == 200
    exported = http.post(f"/v1/preview/models/{run['id']}/export", json={"dataset_id": "rollouts"}).json()
    assert exported == {"dataset_id": "rollouts", "rows": 3}

    # a prompt's logs written by the Humanloop SDK, rated through v4 feedback; exported to a dataset
    hl = Humanloop(api_key="unused", base_url=f"{server.base_url}/v5")
    try:
        logged = {output: hl.prompts.log(path="support/birds", prompt={"model": "tiny"}, output=output,
                                         messages=[{"role": "user", "content": "the bird"}])
                  for output in ("green tree", "small house", "wet rock")}
    finally:  # the SDK instruments the openai package process-wide; other tests get it back untouched
        from opentelemetry.instrumentation.openai import OpenAIInstrumentor

        OpenAIInstrumentor().uninstrument()
    feedback = [{"type": "rating", "value": "good", "data_id": logged["green tree"].id},
                {"type": "rating", "value": "bad", "data_id": logged["small house"].id}]
    assert http.post("/v4/feedback", json=feedback).status_code == 200
    prompt_id = logged["green tree"].prompt_id
    assert http.post(f"/v5/prompts/{prompt_id}/export", json={"dataset_id": "birds"}).json() == {
        "dataset_id": "birds", "rows": 3}

    # the prompt logs cannot give preference pairs: a 400 naming the field
    with pytest.raises(BadRequestError, match="training_config.data_config.data_format"):
        client.post_training.preference_optimize(
            job_uuid="no-pairs", finetuned_model="tiny", algorithm_config={"beta": 0.1},
            training_config=training("birds", "prompt_logs"), hyperparam_search_config={}, logger_config={})

    for job_uuid, dataset_id, data_format in (("from-rollouts", "rollouts", "trajectories"),
                                              ("from-feedback", "birds", "prompt_logs")):
        client.post_training.supervised_fine_tune(
            job_uuid=job_uuid, model="tiny", algorithm_config=LORA, hyperparam_search_config={}, logger_config={},
            training_config=training(dataset_id, data_format, n_epochs=10))
    for job_uuid in ("from-rollouts", "from-feedback"):
        status = finished(client, job_uuid)
        assert status.status == "completed", status
        logs = client.get("/v1/post-training/job/logs", cast_to=JobLogsResponse, options={"params": {"job_uuid": job_uuid}})
        assert logs.log_lines[0].startswith("sft: 1 examples")  # the best rollout; the one log rated good
    assert reply(client, "from-rollouts-epoch-10", "the sky").startswith("blue river")
    assert reply(client, "from-feedback-epoch-10", "the bird").startswith("green tree")
