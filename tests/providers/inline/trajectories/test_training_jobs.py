"""W&B training jobs on the trajectories API, in-process: inline::sql trajectories trained by
inline::huggingface post-training, served by inline::transformers (a tiny Llama built here).

Requests are checked before any work (4xx naming the field); a job's events page by cursor;
each finished job is the model's next checkpoint, which its ``wandb-artifact:///`` names serve,
and the next job trains that checkpoint's adapter on (not a second one on top)."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from tests.support import app_from_yaml, build_tiny_llama, serve_app

NAME = "wandb-artifact:///acme/rl/tiny-run"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return build_tiny_llama(tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture
def app(tmp_path, tiny, monkeypatch):
    monkeypatch.setenv("POLYSTACK_HOME", str(tmp_path / "home"))
    data = tmp_path / "data"
    data.mkdir()
    dialogs = [{"messages": [{"role": "user", "content": "the cat"}, {"role": "assistant", "content": "blue river"}]}] * 4
    (data / "sft.jsonl").write_text("".join(json.dumps(d) + "\n" for d in dialogs))
    (data / "broken.jsonl").write_text(json.dumps(dialogs[0]) + "\n" + json.dumps({"text": "no messages"}) + "\n")
    config = f"""\
        version: '2'
        image_name: training-jobs-test
        apis: [inference, datasetio, post_training, trajectories]
        providers:
          inference:
          - {{provider_id: transformers, provider_type: inline::transformers, config: {{load: first_use, models: {{tiny: {{path: {tiny.path}}}}}}}}}
          datasetio:
          - {{provider_id: localfs, provider_type: inline::localfs, config: {{}}}}
          post_training:
          - {{provider_id: huggingface, provider_type: inline::huggingface, config: {{device: cpu}}}}
          trajectories:
          - {{provider_id: traj, provider_type: inline::sql, config: {{}}}}
        server:
          fetch:
            allow_dirs: [{data}]
        models:
        - {{model_id: tiny, provider_id: transformers}}
        """
    return app_from_yaml(tmp_path, config), data


def group(*rewards: float, prompt: str = "the cat") -> dict:
    return {"trajectories": [{"messages_and_choices": [
        {"role": "user", "content": prompt},
        {"finish_reason": "stop", "index": 0, "message": {"role": "assistant", "content": "answer" + " more" * i}}],
        "reward": reward} for i, reward in enumerate(rewards)]}


async def create_model(client) -> str:
    response = await client.post("/v1/preview/models", json={"entity": "acme", "project": "rl", "name": "tiny-run",
                                                               "base_model": "tiny"})
    assert response.status_code == 200, response.text
    return response.json()["id"]


async def all_events(client, job_id: str, timeout: float = 120) -> list[dict]:
    """Every event, one a page (limit 1), following the cursor as art does, until the job ends."""
    events, after = [], None
    deadline = time.monotonic() + timeout
    while not events or events[-1]["type"] not in ("training_ended", "training_failed"):
        assert time.monotonic() < deadline, events
        page = (await client.get(f"/v1/preview/training-jobs/{job_id}/events",
                                 params={"limit": 1, **({"after": after} if after else {})})).json()
        assert len(page["data"]) <= 1
        if page["data"]:
            events += page["data"]
            after = page["last_id"]
            assert page["first_id"] == page["last_id"] == events[-1]["id"]
        else:
            assert page["has_more"] is False
            await asyncio.sleep(0.2)
    return events


async def test_bad_requests_are_4xx_naming_the_field(app):
    make_app, data = app
    async with serve_app(make_app) as client:
        model_id = await create_model(client)

        async def job(path: str = "/v1/preview/training-jobs", **body):
            return await client.post(path, json={"model_id": model_id, "trajectory_groups": [group(1, 0)], **body})

        unknown = await job(model_id="model-nope")
        assert unknown.status_code == 404 and "model-nope" in unknown.json()["detail"]
        missing = await client.post("/v1/preview/training-jobs", json={"model_id": model_id})
        assert missing.status_code == 422 and "trajectory_groups" in missing.text
        for body, field in [
            ({"trajectory_groups": []}, "trajectory_groups"),
            ({"experimental_config": {"learning_rate": -1}}, "experimental_config.learning_rate"),
            ({"experimental_config": {"epsilon": -0.5}}, "experimental_config.epsilon"),
            ({"experimental_config": {"entropy_bonus": 0.1}}, "experimental_config.entropy_bonus"),
            ({"trajectory_groups": [{"trajectories": [{"messages_and_choices": [{"role": "user", "content": "x"}],
                                                        "reward": 1}]}]},
             "trajectory_groups[0].trajectories[0].messages_and_choices"),
            # GRPO learns what the model sampled: a written assistant message is context, not a choice
            ({"trajectory_groups": [{"trajectories": [{"messages_and_choices": [
                {"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}], "reward": 1}]}]},
             "trajectory_groups[0].trajectories[0].messages_and_choices"),
        ]:
            response = await job(**body)
            assert response.status_code == 400, (body, response.text)
            assert response.json()["detail"].startswith(f"{field}:"), response.text
        bad_level = await job(experimental_config={"importance_sampling_level": "word"})
        assert bad_level.status_code == 422 and "importance_sampling_level" in bad_level.text
        assert (await client.get("/v1/preview/training-jobs/tj-nope/events")).status_code == 404

        async def sft(url: str, **config):
            return await client.post("/v1/preview/sft-training-jobs", json={
                "model_id": model_id, "training_data_url": url, **({"config": config} if config else {})})

        for url, config, why in [
            ("wandb-artifact:///acme/rl/data:v0", {}, "W&B artifacts"),
            ("file:///etc/passwd", {}, "refused"),
            (f"file://{data}/broken.jsonl", {}, "line 2"),
            (f"file://{data}/sft.jsonl", {"learning_rate": 0}, "positive"),
            (f"file://{data}/sft.jsonl", {"learning_rate": []}, "at least one"),
        ]:
            response = await sft(url, **config)
            assert response.status_code == 400, (url, response.text)
            field = "config.learning_rate" if config else "training_data_url"
            assert response.json()["detail"].startswith(f"{field}:") and why in response.json()["detail"], response.text
        # the post-training operation underneath, called directly, names its own fields
        direct = await client.post("/v1/post-training/optimize-trajectories", json={
            "job_uuid": "", "model": "nope", "trajectory_groups": [group(1, 0)], "algorithm_config": {"type": "grpo"}})
        assert direct.status_code == 400 and direct.json()["detail"].startswith("model:"), direct.text
        no_type = await client.post("/v1/post-training/optimize-trajectories", json={
            "job_uuid": "", "model": "tiny", "trajectory_groups": [group(1, 0)], "algorithm_config": {}})
        assert no_type.status_code == 422 and "algorithm_config" in no_type.text
        # nothing was trained: no job, no checkpoint
        assert (await client.get("/v1/post-training/jobs")).json() == {"data": []}
        assert (await client.get(f"/v1/preview/models/{model_id}/checkpoints")).json()["data"] == []


async def test_jobs_page_their_events_and_become_the_next_checkpoint(app):
    make_app, data = app
    async with serve_app(make_app) as client:
        model_id = await create_model(client)
        # two trainable groups (rewards differ) and one whose rewards are equal: two gradient steps
        groups = [group(1, 0, 0), group(0.5, 0.5), group(0, 1, prompt="a dog")]
        response = await client.post("/v1/preview/training-jobs", json={
            "model_id": model_id, "trajectory_groups": groups,
            "experimental_config": {"learning_rate": 0.01, "ppo": True, "epsilon": 0.2}})
        assert response.status_code == 200, response.text
        job_id = response.json()["id"]
        events = await all_events(client, job_id)
        assert [e["type"] for e in events] == ["training_started", "gradient_step", "gradient_step", "training_ended"]
        assert events[0]["data"] == {"num_sequences": 2}
        # no logprobs were logged: the old ones are the start model's, so the first step's ratio is 1
        assert events[1]["data"]["mean_ratio"] == pytest.approx(1.0, abs=1e-4)
        for step in events[1:3]:
            assert {"loss", "grad_norm", "learning_rate", "num_trainable_tokens"} <= step["data"].keys()
            assert step["data"]["learning_rate"] == 0.01 and step["data"]["num_trainable_tokens"] > 0
        page = (await client.get(f"/v1/preview/training-jobs/{job_id}/events", params={"limit": 2})).json()
        assert [e["id"] for e in page["data"]] == [e["id"] for e in events[:2]] and page["has_more"] is True
        rest = (await client.get(f"/v1/preview/training-jobs/{job_id}/events", params={"after": page["last_id"]})).json()
        assert [e["id"] for e in rest["data"]] == [e["id"] for e in events[2:]] and rest["has_more"] is False
        for params, field in [({"after": "evt-nope"}, "after"), ({"limit": 0}, "limit")]:
            bad = await client.get(f"/v1/preview/training-jobs/{job_id}/events", params=params)
            assert bad.status_code == 400 and bad.json()["detail"].startswith(f"{field}:"), bad.text
        # the same job through the post-training API
        same = (await client.get("/v1/post-training/job/events", params={"job_uuid": job_id})).json()
        assert same["data"] == events

        checkpoints = (await client.get(f"/v1/preview/models/{model_id}/checkpoints")).json()["data"]
        assert [c["step"] for c in checkpoints] == [1]
        assert checkpoints[0]["metrics"]["train_loss"] == pytest.approx((events[1]["data"]["loss"] + events[2]["data"]["loss"]) / 2)

        # SFT from a JSONL of trajectories (art's format) goes on from step 1's adapter
        sft = await client.post("/v1/preview/sft-training-jobs", json={
            "model_id": model_id, "training_data_url": f"file://{data}/sft.jsonl",
            "config": {"batch_size": 2, "learning_rate": [0.02, 0.01]}})
        assert sft.status_code == 200, sft.text
        sft_events = await all_events(client, sft.json()["id"])
        assert [e["type"] for e in sft_events] == ["training_started", "gradient_step", "gradient_step", "training_ended"]
        assert [e["data"]["learning_rate"] for e in sft_events[1:3]] == [0.02, 0.01]
        steps = [c["step"] for c in (await client.get(f"/v1/preview/models/{model_id}/checkpoints")).json()["data"]]
        assert steps == [2, 1]

        served = {}
        for name in (f"{NAME}:step1", f"{NAME}:step2", NAME):
            reply = await client.post("/v1/chat/completions", json={
                "model": name, "messages": [{"role": "user", "content": "the cat"}], "temperature": 0, "max_tokens": 4})
            assert reply.status_code == 200, reply.text
            served[name] = reply.json()["choices"][0]["message"]["content"]
        assert served[NAME] == served[f"{NAME}:step2"]  # the bare name is the latest step
        # step 2 trained step 1's adapter on: one adapter on the base, not two stacked
        models = {m["identifier"]: m for m in (await client.get("/v1/models")).json()["data"]}
        step2 = models[f"{NAME}:step2"]
        assert len(step2["metadata"]["transformers"]["adapters"]) == 1
        assert step2["metadata"]["transformers"]["adapters"] != models[f"{NAME}:step1"]["metadata"]["transformers"]["adapters"]


async def test_a_cancelled_job_ends_with_training_failed_and_no_checkpoint(app):
    make_app, _data = app
    async with serve_app(make_app) as client:
        model_id = await create_model(client)
        response = await client.post("/v1/preview/training-jobs", json={
            "model_id": model_id, "trajectory_groups": [group(1, 0)] * 50})
        job_id = response.json()["id"]
        # the training job is a post-training job of the same id: its routes cancel it
        cancel = await client.post("/v1/post-training/job/cancel", json={"job_uuid": job_id})
        assert cancel.status_code == 200, cancel.text
        events = await all_events(client, job_id)
        assert events[-1]["type"] == "training_failed" and "cancelled" in events[-1]["data"]["error_message"]
        assert (await client.get(f"/v1/preview/models/{model_id}/checkpoints")).json()["data"] == []
