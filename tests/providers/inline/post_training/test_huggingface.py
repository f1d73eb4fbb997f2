"""inline::huggingface post-training in-process: LoRA SFT and DPO of a tiny Llama built here, on CPU.

Each job runs in a worker process of the stack's job runner (torch loads there,
which takes most of a test's seconds); the checkpoint is then served by the
stack's inline::transformers provider.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest

from tests.support import app_from_yaml, serve_app

ANSWER = "blue river"
SFT_ROWS = [{"input_query": "the quick brown fox", "expected_answer": ANSWER}]
LORA = {"type": "LoRA", "lora_attn_modules": ["q_proj", "v_proj", "output_proj"], "apply_lora_to_mlp": True,
        "apply_lora_to_output": False, "rank": 8, "alpha": 16}


def training(dataset_id: str = "qa", *, steps: int = 12, lr: float = 0.02, fmt: str = "instruct", **extra) -> dict:
    return {"n_epochs": 1, "max_steps_per_epoch": steps, "gradient_accumulation_steps": 1, "max_validation_steps": 1,
            "dtype": "fp32",
            "data_config": {"dataset_id": dataset_id, "batch_size": 2, "shuffle": True, "data_format": fmt},
            "optimizer_config": {"optimizer_type": "adamw", "lr": lr, "weight_decay": 0.0, "num_warmup_steps": 0},
            **extra}


def sft(job_uuid: str, **fields) -> dict:
    return {"job_uuid": job_uuid, "model": "tiny", "training_config": training(), "algorithm_config": LORA,
            "hyperparam_search_config": {}, "logger_config": {}, **fields}


@pytest.fixture
def app(tmp_path, tiny, monkeypatch):
    monkeypatch.setenv("POLYSTACK_HOME", str(tmp_path / "home"))
    data = tmp_path / "data"
    data.mkdir()
    for name, rows in {
        "qa": SFT_ROWS * 24,  # 12 steps of 2
        # 20000 steps of 1: far longer than the test waits
        "dialogs": [{"messages": [{"role": "user", "content": "the cat"}, {"role": "assistant", "content": ANSWER}]}] * 20_000,
        "wrong": [{"question": "the cat", "answer": "runs"}],
        "qa-pairs": [{"prompt": SFT_ROWS[0]["input_query"], "chosen": ANSWER, "rejected": "lazy dog"}] * 2,
        "pairs": [{"prompt": "the cat", "chosen": "blue river", "rejected": "lazy dog"},
                  {"prompt": "the bird", "chosen": "green tree", "rejected": "small house"}] * 8,  # 8 steps of 2
    }.items():
        (data / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    config = f"""\
        version: '2'
        image_name: post-training-test
        apis: [inference, datasetio, post_training]
        providers:
          inference:
          - provider_id: transformers
            provider_type: inline::transformers
            config:
              load: first_use
              models:
                tiny: {{path: {tiny.path}}}
          datasetio:
          - provider_id: localfs
            provider_type: inline::localfs
            config: {{}}
          post_training:
          - provider_id: huggingface
            provider_type: inline::huggingface
            config: {{device: cpu}}
        server:
          fetch:
            allow_dirs: [{data}]
        models:
        - model_id: tiny
          provider_id: transformers
        """
    return lambda: app_from_yaml(tmp_path, config), data


async def register(client, data, *names: str) -> None:
    for name in names:
        response = await client.post("/v1/datasets", json={
            "dataset_id": name, "url": {"uri": f"file://{data}/{name}.jsonl"}, "dataset_schema": {}})
        assert response.status_code == 200, response.text


async def wait(client, job_uuid: str, timeout: float = 90) -> tuple[dict, set[str]]:
    """The final status and every status seen on the way."""
    seen = set()
    deadline = time.monotonic() + timeout
    while True:
        status = (await client.get("/v1/post-training/job/status", params={"job_uuid": job_uuid})).json()
        seen.add(status["status"])
        if status["status"] not in ("scheduled", "in_progress"):
            return status, seen
        assert time.monotonic() < deadline, status
        await asyncio.sleep(0.1)


async def job_result(client) -> dict:
    """The newest job's result, as GET /v1/jobs/{job_id} shows it (per-step losses and metrics)."""
    job_id = (await client.get("/v1/jobs")).json()["data"][0]["job_id"]
    return (await client.get(f"/v1/jobs/{job_id}")).json()["result"]


async def test_sft_lowers_the_loss_and_the_checkpoint_answers_chat(app):
    make_app, data = app
    async with serve_app(make_app()) as client:
        await register(client, data, "qa", "qa-pairs")
        response = await client.post("/v1/post-training/supervised-fine-tune", json=sft("sft-1"))
        assert response.status_code == 200, response.text
        assert response.json() == {"job_uuid": "sft-1"}
        status, seen = await wait(client, "sft-1")
        assert status["status"] == "completed", status
        assert {"scheduled", "in_progress"} & seen and status["started_at"] and status["completed_at"]
        assert status["resources_allocated"]["device"] == "cpu" and status["progress"] == 1.0
        assert status["progress_percent"] == 100.0
        [checkpoint] = status["checkpoints"]
        assert checkpoint["epoch"] == 1 and checkpoint["iters"] == 12 and checkpoint["path"]["uri"].startswith("file://")
        assert checkpoint["identifier"] == "sft-1-epoch-1" and checkpoint["post_training_job_id"] == "sft-1"
        losses = (await job_result(client))["losses"]
        assert len(losses) == 12 and losses[-1] < losses[0] / 2, losses
        assert checkpoint["training_metrics"]["train_loss"] == pytest.approx(sum(losses) / 12)
        logs = (await client.get("/v1/post-training/job/logs", params={"job_uuid": "sft-1"})).json()
        assert logs["job_uuid"] == "sft-1" and not logs["has_more"] and logs["next_offset"] == 14
        assert logs["log_lines"][0].startswith("sft: 24 examples, 12 steps on cpu (float32)")
        assert logs["log_lines"][1].startswith(f"step 1/12 epoch=1 loss={losses[0]:.4f} lr=0.02 ")
        assert logs["log_lines"][-1] == f"epoch 1/1 train_loss={sum(losses) / 12:.4f}"
        page = (await client.get("/v1/post-training/job/logs",
                                 params={"job_uuid": "sft-1", "offset": 12, "limit": 1})).json()
        assert page == {"job_uuid": "sft-1", "log_lines": [logs["log_lines"][12]], "next_offset": 13, "has_more": True}
        bad_page = await client.get("/v1/post-training/job/logs", params={"job_uuid": "sft-1", "limit": 0})
        assert bad_page.status_code == 400 and "limit" in bad_page.json()["detail"]
        artifacts = (await client.get("/v1/post-training/job/artifacts", params={"job_uuid": "sft-1"})).json()
        assert artifacts == {"job_uuid": "sft-1", "checkpoints": status["checkpoints"]}
        assert (await client.get("/v1/post-training/jobs")).json() == {"data": [{"job_uuid": "sft-1"}]}

        def chat(model):
            return client.post("/v1/chat/completions", json={
                "model": model, "messages": [{"role": "user", "content": SFT_ROWS[0]["input_query"]}],
                "temperature": 0, "max_tokens": 6})

        tuned = await chat("sft-1-epoch-1")
        assert tuned.status_code == 200, tuned.text
        assert tuned.json()["choices"][0]["message"]["content"].startswith(ANSWER)  # it learned the answer
        base = (await chat("tiny")).json()["choices"][0]["message"]["content"]
        assert not base.startswith(ANSWER)
        again = await client.post("/v1/post-training/supervised-fine-tune", json=sft("sft-1"))
        assert again.status_code == 409 and "sft-1" in again.text

        # DPO on the fine-tuned checkpoint: its adapter is merged first, then the new one trains on top
        response = await client.post("/v1/post-training/preference-optimize", json={
            "job_uuid": "dpo-on-sft", "finetuned_model": "sft-1-epoch-1",
            "algorithm_config": {"reward_scale": 1.0, "reward_clip": 5.0, "epsilon": 0.1, "gamma": 0.99},
            "training_config": training("qa-pairs", steps=1), "hyperparam_search_config": {}, "logger_config": {}})
        assert response.status_code == 200, response.text
        assert (await wait(client, "dpo-on-sft"))[0]["status"] == "completed"
        assert len((await job_result(client))["serve"]["transformers"]["adapters"]) == 2
        assert (await chat("dpo-on-sft-epoch-1")).status_code == 200
    async with serve_app(make_app()) as client:  # after a restart the checkpoint is still served
        assert (await chat("sft-1-epoch-1")).json()["choices"][0]["message"]["content"].startswith(ANSWER)


async def start_long_job(client, job_uuid: str) -> dict:
    """A 10000-step job, once it is training (its status message counts steps)."""
    body = sft(job_uuid, training_config=training("dialogs", steps=1_000_000, lr=1e-4, fmt="dialog"))
    assert (await client.post("/v1/post-training/supervised-fine-tune", json=body)).status_code == 200
    deadline = time.monotonic() + 90
    while "step" not in ((status := (await client.get("/v1/post-training/job/status",
                                                      params={"job_uuid": job_uuid})).json())["message"] or ""):
        assert time.monotonic() < deadline, status
        await asyncio.sleep(0.1)
    return status


async def test_cancel_stops_a_long_job_within_5_seconds_and_a_restart_fails_a_running_one(app):
    make_app, data = app
    async with serve_app(make_app()) as client:
        await register(client, data, "dialogs")
        assert (await start_long_job(client, "long"))["status"] == "in_progress"
        cancelled_at = time.monotonic()
        assert (await client.post("/v1/post-training/job/cancel", json={"job_uuid": "long"})).status_code == 200
        status, _ = await wait(client, "long", timeout=5)
        assert status["status"] == "cancelled" and time.monotonic() - cancelled_at < 5
        assert status["checkpoints"] == []
        await start_long_job(client, "stopped")
    async with serve_app(make_app()) as client:  # the server stopped while "stopped" trained
        status = (await client.get("/v1/post-training/job/status", params={"job_uuid": "stopped"})).json()
        assert status["status"] == "failed" and "interrupted" in status["message"], status

        # run again from its params: the same job_uuid shows the new run
        jobs = {j["params"]["job_uuid"]: j for j in (await client.get("/v1/jobs", params={"kind": "post_training"})).json()["data"]}
        again = await client.post(f"/v1/jobs/{jobs['stopped']['job_id']}/restart")
        assert again.status_code == 200, again.text
        assert again.json()["params"]["restart_of"] == jobs["stopped"]["job_id"]
        deadline = time.monotonic() + 90
        while "step" not in ((status := (await client.get("/v1/post-training/job/status",
                                                          params={"job_uuid": "stopped"})).json())["message"] or ""):
            assert time.monotonic() < deadline, status
            await asyncio.sleep(0.1)
        assert status["status"] == "in_progress"
        assert (await client.post("/v1/post-training/job/cancel", json={"job_uuid": "stopped"})).status_code == 200

        # a job whose rows are gone (another machine's disk) cannot be run again here
        Path(jobs["long"]["params"]["rows_file"]).unlink()
        gone = await client.post(f"/v1/jobs/{jobs['long']['job_id']}/restart")
        assert gone.status_code == 409 and "training data" in gone.json()["detail"], gone.text


async def test_dpo_moves_the_policy_toward_the_chosen_answers(app):
    make_app, data = app
    async with serve_app(make_app()) as client:
        await register(client, data, "pairs")
        response = await client.post("/v1/post-training/preference-optimize", json={
            "job_uuid": "dpo-1", "finetuned_model": "tiny",
            "algorithm_config": {"reward_scale": 1.0, "reward_clip": 5.0, "epsilon": 0.1, "gamma": 0.99, "beta": 0.1},
            "training_config": training("pairs", steps=8, lr=0.01), "hyperparam_search_config": {},
            "logger_config": {}})
        assert response.status_code == 200, response.text
        deadline = time.monotonic() + 90  # served once the job ends, before anyone asks for its status
        while (await client.get("/v1/models/dpo-1-epoch-1")).status_code == 404:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.2)
        status, _ = await wait(client, "dpo-1")
        assert status["status"] == "completed", status
        result = await job_result(client)
        margins, accuracy = result["reward_margins"], result["reward_accuracy"]
        assert margins[0] == pytest.approx(0, abs=1e-4)  # the policy starts as the reference
        assert margins[-1] > 0.5 and accuracy[-1] == 1.0, margins
        assert result["losses"][-1] < result["losses"][0]
        chat = await client.post("/v1/chat/completions", json={
            "model": "dpo-1-epoch-1", "messages": [{"role": "user", "content": "the cat"}], "max_tokens": 3})
        assert chat.status_code == 200, chat.text


async def test_without_transformers_the_checkpoint_is_listed_with_how_to_serve_it(tmp_path, tiny, monkeypatch):
    monkeypatch.setenv("POLYSTACK_HOME", str(tmp_path / "home"))
    (tmp_path / "qa.jsonl").write_text(json.dumps(SFT_ROWS[0]) + "\n")
    app = app_from_yaml(tmp_path, f"""\
        version: '2'
        image_name: post-training-alone
        apis: [datasetio, post_training]
        providers:
          datasetio:
          - {{provider_id: localfs, provider_type: inline::localfs, config: {{}}}}
          post_training:
          - provider_id: huggingface
            provider_type: inline::huggingface
            config: {{device: cpu, models: {{tiny: {{path: {tiny.path}}}}}}}
        server:
          fetch:
            allow_dirs: [{tmp_path}]
        """)
    async with serve_app(app) as client:
        await register(client, tmp_path, "qa")
        response = await client.post("/v1/post-training/supervised-fine-tune", json=sft("alone"))
        assert response.status_code == 200, response.text
        status, _ = await wait(client, "alone")
        [checkpoint] = status["checkpoints"]
        assert status["status"] == "completed" and checkpoint["identifier"] is None
        serve = (await job_result(client))["serve"]
        assert serve["model_id"] == "alone-epoch-1"
        assert serve["transformers"] == {"path": tiny.path, "adapters": [checkpoint["path"]["uri"].removeprefix("file://")]}


@pytest.mark.parametrize(("change", "field"), [
    ({"model": "no-such-model"}, "model"),
    ({"training_config": training("no-such-dataset")}, "training_config.data_config.dataset_id"),
    ({"training_config": training("wrong")}, "training_config.data_config.dataset_id"),
    ({"training_config": training("qa", fmt="dialog")}, "training_config.data_config.dataset_id"),
    ({"training_config": training("qa", fmt="trajectories")}, "training_config.data_config.dataset_id"),
    ({"training_config": training("qa", fmt="prompt_logs")}, "training_config.data_config.dataset_id"),
    ({"training_config": training(lr=-1)}, "training_config.optimizer_config.lr"),
    ({"training_config": training(steps=0)}, "training_config.max_steps_per_epoch"),
    ({"training_config": training(dtype="int4")}, "training_config.dtype"),
    ({"training_config": training(efficiency_config={"fsdp_cpu_offload": True})},
     "training_config.efficiency_config.fsdp_cpu_offload"),
    ({"algorithm_config": {"type": "QAT", "quantizer_name": "int4", "group_size": 32}}, "algorithm_config.type"),
    ({"algorithm_config": None}, "algorithm_config"),
    ({"algorithm_config": {**LORA, "lora_attn_modules": ["nope"]}}, "algorithm_config.lora_attn_modules"),
    ({"algorithm_config": {**LORA, "quantize_base": True}}, "algorithm_config.quantize_base"),
    ({"hyperparam_search_config": {"lr": [1e-3, 1e-4]}}, "hyperparam_search_config"),
    ({"job_uuid": "../escape"}, "job_uuid"),
    ({"checkpoint_dir": "/etc"}, "checkpoint_dir"),
])
async def test_bad_requests_are_400s_naming_the_field(app, change, field):
    make_app, data = app
    async with serve_app(make_app()) as client:
        await register(client, data, "qa", "wrong")
        response = await client.post("/v1/post-training/supervised-fine-tune", json={**sft("bad"), **change})
        assert response.status_code == 400, response.text
        assert field in response.json()["detail"], response.text
        assert (await client.get("/v1/post-training/jobs")).json() == {"data": []}
        missing = await client.get("/v1/post-training/job/status", params={"job_uuid": "nope"})
        assert missing.status_code == 404
        assert (await client.get("/v1/post-training/job/logs", params={"job_uuid": "nope"})).status_code == 404


def test_dpo_loss_matches_the_formula():
    import math

    import torch

    from providers.inline.post_training.huggingface._train import dpo_loss

    chosen, rejected = torch.tensor([-1.0, -2.0]), torch.tensor([-3.0, -1.0])
    ref_chosen, ref_rejected = torch.tensor([-2.0, -2.0]), torch.tensor([-2.0, -2.0])
    loss, margins = dpo_loss(chosen, rejected, ref_chosen, ref_rejected, beta=0.5)
    h = [(-1 + 2) - (-3 + 2), (-2 + 2) - (-1 + 2)]  # 2 and -1
    assert margins.tolist() == pytest.approx([0.5 * x for x in h])
    expected = sum(-math.log(1 / (1 + math.exp(-0.5 * x))) for x in h) / 2
    assert loss.item() == pytest.approx(expected)
    hinge, _ = dpo_loss(chosen, rejected, ref_chosen, ref_rejected, beta=0.5, loss_type="hinge")
    assert hinge.item() == pytest.approx((0 + 1.5) / 2)
