"""inline::huggingface on logs exported to datasets: DPO pairs from logged trajectory groups, and the
exports' rows (the full SFT loop with the real clients is in tests/e2e/test_post_training.py)."""

from __future__ import annotations

import json

import pytest

from tests.providers.inline.post_training.test_huggingface import job_result, training, wait
from tests.support import app_from_yaml, serve_app


@pytest.fixture
def app(tmp_path, tiny, monkeypatch):
    monkeypatch.setenv("POLYSTACK_HOME", str(tmp_path / "home"))
    return app_from_yaml(tmp_path, f"""\
        version: '2'
        image_name: logged-training-test
        apis: [inference, datasetio, post_training, trajectories, prompt_logs]
        providers:
          inference:
          - provider_id: transformers
            provider_type: inline::transformers
            config: {{load: first_use, models: {{tiny: {{path: {tiny.path}}}}}}}
          datasetio:
          - {{provider_id: localfs, provider_type: inline::localfs, config: {{}}}}
          post_training:
          - {{provider_id: huggingface, provider_type: inline::huggingface, config: {{device: cpu}}}}
          trajectories:
          - {{provider_id: trajectories, provider_type: inline::sql, config: {{}}}}
          prompt_logs:
          - {{provider_id: prompt-logs, provider_type: inline::sql, config: {{}}}}
        models:
        - model_id: tiny
          provider_id: transformers
        """)


def group(prompt: str, *answers: tuple[str, float]) -> dict:
    return {"trajectories": [
        {"messages_and_choices": [{"role": "user", "content": prompt},
                                  {"finish_reason": "stop", "index": 0, "message": {"role": "assistant", "content": a}}],
         "reward": reward} for a, reward in answers]}


async def log_and_export(client, groups: list[dict], dataset_id: str) -> None:
    model = (await client.post("/v1/preview/models", json={"base_model": "tiny", "project": "p", "name": "run"})).json()
    logged = await client.post(f"/v1/preview/models/{model['id']}/log", json={"split": "train", "trajectory_groups": groups})
    assert logged.status_code == 200, logged.text
    exported = await client.post(f"/v1/preview/models/{model['id']}/export", json={"dataset_id": dataset_id})
    assert exported.json() == {"dataset_id": dataset_id, "rows": sum(len(g["trajectories"]) for g in groups)}


def dpo(job_uuid: str, dataset_id: str, fmt: str = "trajectories", steps: int = 8) -> dict:
    return {"job_uuid": job_uuid, "finetuned_model": "tiny", "algorithm_config": {"beta": 0.1},
            "training_config": training(dataset_id, steps=steps, lr=0.01, fmt=fmt),
            "hyperparam_search_config": {}, "logger_config": {}}


async def test_dpo_prefers_each_groups_best_trajectory_and_skips_tied_groups(app):
    groups = [group("the cat", ("blue river", 1.0), ("lazy dog", 0.0), ("red sun", 0.5)),
              group("the bird", ("green tree", 0.9), ("small house", 0.1))] * 8
    groups.append(group("the fish", ("wet", 1.0), ("dry", 1.0)))  # a tie: no pair
    async with serve_app(app) as client:
        await log_and_export(client, groups, "runs")
        response = await client.post("/v1/post-training/preference-optimize", json=dpo("dpo-traj", "runs"))
        assert response.status_code == 200, response.text
        status, _ = await wait(client, "dpo-traj")
        assert status["status"] == "completed", status
        logs = (await client.get("/v1/post-training/job/logs", params={"job_uuid": "dpo-traj"})).json()["log_lines"]
        assert logs[0].startswith("dpo: 16 examples, 8 steps")  # 16 pairs: the tied group gave none
        result = await job_result(client)
        assert result["reward_margins"][-1] > 0.5 and result["reward_accuracy"][-1] == 1.0, result["reward_margins"]


async def test_logged_data_in_the_wrong_shape_or_without_pairs_is_a_400_naming_the_field(app):
    async with serve_app(app) as client:
        await log_and_export(client, [group("the fish", ("wet", 1.0), ("dry", 1.0))], "ties")
        tied = await client.post("/v1/post-training/preference-optimize", json=dpo("tied", "ties"))
        assert tied.status_code == 400
        assert tied.json()["detail"].startswith("training_config.data_config.dataset_id 'ties': none of its 1 "
                                                "groups gives a preference pair"), tied.text
        logs = await client.post("/v1/post-training/preference-optimize", json=dpo("pl", "ties", fmt="prompt_logs"))
        assert logs.status_code == 400 and "training_config.data_config.data_format" in logs.json()["detail"]
        bad = await client.post("/v1/post-training/preference-optimize", json=dpo("bad", "ties", fmt="not-a-format"))
        assert bad.status_code == 422 and "data_format" in bad.text
        assert (await client.get("/v1/post-training/jobs")).json() == {"data": []}


async def test_prompt_logs_export_rows_carry_messages_output_and_feedback(app):
    async with serve_app(app) as client:
        logged = (await client.post("/v4/logs", json={
            "project": "support/answer", "config": {"model": "tiny"}, "output": "green tree",
            "messages": [{"role": "user", "content": "the bird"}], "feedback": {"type": "rating", "value": "good"}})).json()
        await client.post("/v4/feedback", json={"type": "comment", "value": "nice", "data_id": logged["id"]})
        exported = await client.post(f"/v5/prompts/{logged['project_id']}/export", json={"dataset_id": "support"})
        assert exported.json() == {"dataset_id": "support", "rows": 1}, exported.text
        rows = (await client.get("/v1/datasetio/rows", params={"dataset_id": "support", "rows_in_page": 10})).json()
        [row] = rows["rows"]
        assert (row["log_id"], row["path"], row["output"]) == (logged["id"], "support/answer", "green tree")
        assert json.loads(row["messages"]) == [{"role": "user", "content": "the bird"}]
        assert [(f["type"], f["value"]) for f in row["feedback"]] == [("rating", "good"), ("comment", "nice")]
        dataset = (await client.get("/v1/datasets/support")).json()
        assert dataset["metadata"] == {"source": "prompt_logs", "prompt_id": logged["project_id"]}
        missing = await client.post("/v5/prompts/pr_nope/export", json={"dataset_id": "x"})
        assert missing.status_code == 404 and "id" in missing.json()["detail"]
