"""inline::sql trajectories over HTTP in-process: models, logs and their metrics (checked
against values computed by hand), checkpoints, wandb-artifact:/// names on
/v1/chat/completions and export to a dataset, each collaborator a named test double."""

from __future__ import annotations

import json
import math

import pytest
import yaml
from pydantic import BaseModel

import stack
from stack.apis.datasetio import PaginatedRowsResult
from stack.apis.openai import (
    OpenAIChatChoice,
    OpenAIChatCompletion,
    OpenAIChatMessage,
    OpenAIUsage,
)
from stack.plugins import get_plugin_manager
from stack.registry import ProviderSpec
from tests.support import app_from_yaml, serve_app

BASE = "base-llm"


class _Empty(BaseModel):
    pass


class EchoInference:
    """Test double inference: answers with the name of the model it was asked for."""

    async def openai_chat_completion(self, request) -> OpenAIChatCompletion:
        message = OpenAIChatMessage(content=f"served by {request.model}")
        return OpenAIChatCompletion(id="chatcmpl-echo", created=0, model=request.model,
                                    choices=[OpenAIChatChoice(index=0, message=message)], usage=OpenAIUsage())

    async def chat_completion(self, *args, **kwargs):
        raise AssertionError("not used")

    completion = embeddings = chat_completion


class RecordingRows:
    """Test double datasetio: keeps appended rows per dataset in memory."""

    def __init__(self) -> None:
        self.rows: dict[str, list[dict]] = {}

    async def get_rows_paginated(self, dataset_id: str, rows_in_page: int, page_token: str | None = None,
                                 filter_condition: str | None = None) -> PaginatedRowsResult:
        rows = self.rows.get(dataset_id, [])
        return PaginatedRowsResult(rows=rows[:rows_in_page], total_count=len(rows))

    async def append_rows(self, dataset_id: str, rows: list[dict]) -> None:
        self.rows.setdefault(dataset_id, []).extend(rows)


class DoublesPlugin:
    rows = RecordingRows()

    @stack.hookimpl
    def register_providers(self, register):
        async def echo(_config, _context):
            return EchoInference()

        async def rows(_config, _context):
            return self.rows

        register(ProviderSpec(api="inference", provider_type="inline::echo-test-double", config=_Empty, factory=echo))
        register(ProviderSpec(api="datasetio", provider_type="inline::rows-test-double", config=_Empty, factory=rows))


def run_config(store: dict | None = None, datasetio: bool = False) -> str:
    def provider(provider_id, provider_type, config=None):
        return [{"provider_id": provider_id, "provider_type": provider_type, "config": config or {}}]

    config = {
        "version": "2", "image_name": "trajectories-test", "apis": ["inference", "trajectories"],
        "providers": {"inference": provider("echo", "inline::echo-test-double"),
                      "trajectories": provider("traj", "inline::sql", {"store": store} if store else {})},
        "models": [{"model_id": BASE, "provider_id": "echo", "provider_model_id": "echo-upstream", "model_type": "llm"}],
    }
    if datasetio:
        config["apis"].append("datasetio")
        config["providers"]["datasetio"] = provider("rows", "inline::rows-test-double")
    return yaml.safe_dump(config)


@pytest.fixture
def app_for(tmp_path, monkeypatch):
    monkeypatch.setenv("POLYSTACK_HOME", str(tmp_path / "home"))
    DoublesPlugin.rows = RecordingRows()
    pm = get_plugin_manager(load_entry_points=False)
    pm.register(DoublesPlugin())
    return lambda **kw: app_from_yaml(tmp_path, run_config(**kw), pm)


def traj(reward, metrics=None, **extra):
    return {"messages_and_choices": [
        {"role": "user", "content": "2+2?"},
        {"finish_reason": "stop", "index": 0, "message": {"role": "assistant", "content": "4"},
         "logprobs": {"content": [{"token": "4", "logprob": -0.1, "top_logprobs": []}]}},
    ], "reward": reward, "metrics": metrics or {}, **extra}


async def create(client, name="run-1", **kw):
    response = await client.post("/v1/preview/models", json={"project": "proj", "name": name, "base_model": BASE, **kw})
    assert response.status_code == 200, response.text
    return response.json()


async def test_metrics_of_one_log_call_match_a_hand_computation(app_for, store_config):
    groups = [
        # rewards 1, 0, 0.5: mean 0.5, population std sqrt(1/6); trainable
        {"trajectories": [traj(1.0, {"correct": True, "duration": 2.0}), traj(0.0, {"correct": False, "duration": 4.0}),
                          traj(0.5, {"correct": True})],
         "metrics": {"difficulty": 3}, "exceptions": [{"type": "ValueError", "message": "boom", "traceback": ""}]},
        # all equal: std 0, not trainable
        {"trajectories": [traj(0.25), traj(0.25)], "metrics": {"difficulty": 1}},
        # a group of one: no std, not trainable
        {"trajectories": [traj(0.75, {"tokens": 10})]},
        # only exceptions: its group metric is not counted
        {"trajectories": [], "exceptions": [{"type": "TimeoutError", "message": "slow"}], "metrics": {"difficulty": 9}},
    ]
    async with serve_app(app_for(store=store_config.model_dump(exclude_none=True))) as client:
        model = await create(client)
        response = await client.post(f"/v1/preview/models/{model['id']}/log", json={"split": "train", "trajectory_groups": groups})
        assert response.status_code == 200, response.text
        body = response.json()
        val = await client.post(f"/v1/preview/models/{model['id']}/log",
                                json={"split": "val", "trajectory_groups": [{"trajectories": [traj(1.0)]}]})
        history = (await client.get(f"/v1/preview/models/{model['id']}/metrics")).json()["data"]
        train_only = (await client.get(f"/v1/preview/models/{model['id']}/metrics", params={"split": "train"})).json()["data"]
    rewards = [1.0, 0.0, 0.5, 0.25, 0.25, 0.75]
    expected = {
        "train/reward": sum(rewards) / 6,
        "train/reward_std_dev": (math.sqrt(1 / 6) + 0.0) / 2,
        "train/correct": 2 / 3,
        "train/duration": 3.0,
        "train/tokens": 10.0,
        "train/exception_rate": 2 / 8,
        "train/num_groups_submitted": 4.0,
        "train/num_groups_trainable": 1.0,
        "train/num_trajectories": 6.0,
        "train/group_metric_difficulty": 2.0,
    }
    assert body["step"] == 0 and body["split"] == "train"
    assert body["metrics"].keys() == expected.keys()
    assert body["metrics"] == pytest.approx(expected)
    assert val.json()["metrics"] == {"val/reward": 1.0, "val/reward_std_dev": 0.0, "val/exception_rate": 0.0,
                                     "val/num_groups_submitted": 1.0, "val/num_groups_trainable": 0.0,
                                     "val/num_trajectories": 1.0}
    assert [h["split"] for h in history] == ["train", "val"]
    assert history[0]["metrics"] == pytest.approx(expected)
    assert [h["split"] for h in train_only] == ["train"]


async def test_models_create_return_existing_and_delete(app_for):
    async with serve_app(app_for()) as client:
        model = await create(client)
        again = await client.post("/v1/preview/models", json={"project": "proj", "name": "run-1", "base_model": BASE})
        existing = await create(client, return_existing=True)
        other_base = await client.post("/v1/preview/models", json={"project": "proj", "name": "run-1",
                                                                   "base_model": "other", "return_existing": True})
        fetched = await client.get(f"/v1/preview/models/{model['id']}")
        deleted = await client.delete(f"/v1/preview/models/{model['id']}")
        gone = await client.get(f"/v1/preview/models/{model['id']}")
        log_gone = await client.post(f"/v1/preview/models/{model['id']}/log", json={"split": "train", "trajectory_groups": []})
        recreated = await create(client)
    assert model["entity"] == "polystack" and model["project"] == "proj" and model["name"] == "run-1"
    assert model["base_model"] == BASE and model["id"] and model["run_id"]
    assert again.status_code == 409
    assert existing == model
    assert other_base.status_code == 409 and "base model" in other_base.json()["detail"]
    assert fetched.json() == model
    assert deleted.status_code == 200
    assert gone.status_code == 404 and log_gone.status_code == 404
    assert recreated["id"] != model["id"]


@pytest.mark.parametrize("body, field", [
    ({"project": "p", "base_model": BASE}, "name"),
    ({"name": "n", "base_model": BASE}, "project"),
    ({"project": "p/q", "name": "n", "base_model": BASE}, "project"),
    ({"entity": "", "project": "p", "name": "n", "base_model": BASE}, "entity"),
    ({"project": "p", "name": "n", "base_model": " "}, "base_model"),
])
async def test_bad_model_fields_are_400s_naming_them(app_for, body, field):
    async with serve_app(app_for()) as client:
        response = await client.post("/v1/preview/models", json=body)
    assert response.status_code == 400
    assert response.json()["detail"].startswith(f"{field}: ")


@pytest.mark.parametrize("group, loc", [
    ({"trajectories": [{"messages_and_choices": []}]}, ["trajectories", 0, "reward"]),
    ({"trajectories": [traj("high")]}, ["trajectories", 0, "reward"]),
    ({"trajectories": [traj(1.0, {"score": "good"})]}, ["trajectories", 0, "metrics", "score"]),
    ({"trajectories": [traj(1.0, metadata={"tags": ["a"]})]}, ["trajectories", 0, "metadata", "tags"]),
    ({"trajectories": [{"messages_and_choices": [{"index": 0, "message": {"role": "assistant", "content": "x"}}],
                        "reward": 1}]}, ["trajectories", 0, "messages_and_choices", 0, "choice", "finish_reason"]),
    ({"trajectories": [{"messages_and_choices": [{"role": "robot", "content": "x"}], "reward": 1}]},
     ["trajectories", 0, "messages_and_choices", 0, "message"]),
    ({"trajectories": [traj(1.0)], "exceptions": [{"message": "m"}]}, ["exceptions", 0, "type"]),
    ({}, ["trajectories"]),
])
async def test_bad_trajectories_are_422s_with_the_field_path(app_for, group, loc):
    async with serve_app(app_for()) as client:
        model = await create(client)
        response = await client.post(f"/v1/preview/models/{model['id']}/log", json={"split": "train", "trajectory_groups": [group]})
    assert response.status_code == 422
    locs = [e["loc"] for e in response.json()["detail"]]
    prefix = ["body", "trajectory_groups", 0, *loc]
    assert any(l[:len(prefix)] == prefix for l in locs), locs


async def test_non_finite_numbers_and_bad_splits_are_refused(app_for):
    async with serve_app(app_for()) as client:
        model = await create(client)
        url = f"/v1/preview/models/{model['id']}/log"
        nan = await client.post(url, content='{"split": "train", "trajectory_groups": [{"trajectories": '
                                             '[{"messages_and_choices": [], "reward": NaN}]}]}',
                                headers={"content-type": "application/json"})
        no_split = await client.post(url, json={"trajectory_groups": []})
        slash = await client.post(url, json={"split": "a/b", "trajectory_groups": []})
    assert nan.status_code == 422
    assert no_split.status_code == 422 and no_split.json()["detail"][0]["loc"] == ["body", "split"]
    assert slash.status_code == 400 and slash.json()["detail"].startswith("split: ")


async def test_checkpoints_page_delete_and_serve_wandb_artifact_names(app_for):
    app = app_for()
    async with serve_app(app) as client:
        model = await create(client)
        plain = "wandb-artifact:///polystack/proj/run-1"
        chat = {"messages": [{"role": "user", "content": "hi"}]}
        before = await client.post("/v1/chat/completions", json={**chat, "model": plain})
        trainer = app.state.stack.impls["trajectories"]
        for step in (1, 2, 3):
            await trainer.record_checkpoint(model["id"], step, {"train/reward": step / 10})
        url = f"/v1/preview/models/{model['id']}/checkpoints"
        first = (await client.get(url, params={"limit": 2})).json()
        second = (await client.get(url, params={"limit": 2, "after": first["last_id"]})).json()
        ascending = (await client.get(url, params={"order": "asc"})).json()
        bad_limit = await client.get(url, params={"limit": 0})
        bad_after = await client.get(url, params={"after": "nope"})
        stepped = await client.post("/v1/chat/completions", json={**chat, "model": plain + ":step2"})
        log = await client.post(f"/v1/preview/models/{model['id']}/log",
                                json={"split": "val", "trajectory_groups": [{"trajectories": [traj(1.0)]}]})
        deleted = await client.request("DELETE", url, json={"steps": [1, 3, 7]})
        after_delete = (await client.get(url)).json()
        gone_step = await client.post("/v1/chat/completions", json={**chat, "model": plain + ":step3"})
        await client.delete(f"/v1/preview/models/{model['id']}")
        gone = await client.post("/v1/chat/completions", json={**chat, "model": plain})
    assert before.status_code == 200 and before.json()["choices"][0]["message"]["content"] == "served by echo-upstream"
    assert [c["step"] for c in first["data"]] == [3, 2] and first["has_more"] is True
    assert first["first_id"] == first["data"][0]["id"]
    assert [c["step"] for c in second["data"]] == [1] and second["has_more"] is False
    assert [c["step"] for c in ascending["data"]] == [1, 2, 3]
    assert ascending["data"][1]["metrics"] == {"train/reward": 0.2}
    assert bad_limit.status_code == 400 and bad_limit.json()["detail"].startswith("limit: ")
    assert bad_after.status_code == 400 and bad_after.json()["detail"].startswith("after: ")
    assert stepped.status_code == 200
    assert log.json()["step"] == 3
    assert deleted.json() == {"deleted_count": 2, "not_found_steps": [7]}
    assert [c["step"] for c in after_delete["data"]] == [2]
    assert gone_step.status_code == 404
    assert gone.status_code == 404


async def test_trajectories_export_to_a_dataset_through_datasetio(app_for):
    async with serve_app(app_for(datasetio=True)) as client:
        model = await create(client)
        groups = [{"trajectories": [traj(1.0, {"correct": True}), traj(0.0, metadata={"scenario_id": "s1"})]}]
        await client.post(f"/v1/preview/models/{model['id']}/log", json={"split": "train", "trajectory_groups": groups})
        await client.post(f"/v1/preview/models/{model['id']}/log",
                          json={"split": "val", "trajectory_groups": [{"trajectories": [traj(0.5)]}]})
        exported = await client.post(f"/v1/preview/models/{model['id']}/export", json={"dataset_id": "rollouts", "split": "train"})
        dataset = (await client.get("/v1/datasets/rollouts")).json()
        rows = (await client.get("/v1/datasetio/rows", params={"dataset_id": "rollouts", "rows_in_page": 10})).json()["rows"]
    assert exported.json() == {"dataset_id": "rollouts", "rows": 2}
    assert dataset["metadata"] == {"source": "trajectories", "model_id": model["id"]}
    assert [r["reward"] for r in rows] == [1.0, 0.0]
    assert json.loads(rows[0]["chat_completion_input"]) == [{"role": "user", "content": "2+2?"},
                                                            {"role": "assistant", "content": "4"}]
    assert rows[0]["metrics"] == {"correct": True} and rows[1]["metadata"] == {"scenario_id": "s1"}
    assert rows[0]["split"] == "train" and rows[0]["step"] == 0 and rows[1]["trajectory_index"] == 1


async def test_export_without_datasetio_is_a_400_naming_the_field(app_for):
    async with serve_app(app_for()) as client:
        model = await create(client)
        response = await client.post(f"/v1/preview/models/{model['id']}/export", json={"dataset_id": "rollouts"})
    assert response.status_code == 400 and response.json()["detail"].startswith("dataset_id: ")
