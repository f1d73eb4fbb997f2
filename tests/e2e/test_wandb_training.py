"""W&B Training's client, ``openpipe-art``'s ``art.serverless.client.Client``, against a real
``polystack run`` with API keys, on SQLite and on PostgreSQL: models, trajectory logs whose
metrics are checked against values computed by hand, checkpoints a trainer records in the
shared store, and ``wandb-artifact:///`` names on /v1/chat/completions (a loopback
OpenAI-compatible test double upstream)."""

from __future__ import annotations

import asyncio
import json
import os

import httpx
import pytest
import yaml
from openai import OpenAI

from tests.support import QuietHandler, ServerProcess, serving

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # art imports litellm, which would fetch prices
art_client = pytest.importorskip("art.serverless.client", reason="install the test extra (openpipe-art)")
art = pytest.importorskip("art")
# importing art patches transformers for the whole process (art/transformers/patches.py) with a
# mask hook that breaks the in-process models of other tests; the HTTP client needs none of it
_art_patches = pytest.importorskip("art.transformers.patches")
_art_patches.masking_utils._preprocess_mask_arguments = _art_patches._preprocess_mask_arguments
from art.trajectories import History
from openai import AuthenticationError, BadRequestError, ConflictError, NotFoundError

BASE = "Qwen/Qwen3-14B-Instruct"
KEY = "wandb-test-key"


class UpstreamDouble(QuietHandler):
    """Test double of an OpenAI-compatible upstream: answers which model it was asked for."""

    models: list[str] = []

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        UpstreamDouble.models.append(body["model"])
        self.reply(json.dumps({
            "id": "chatcmpl-up", "object": "chat.completion", "created": 0, "model": body["model"],
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "4"}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
        }).encode(), "application/json")


@pytest.fixture
def server(tmp_path, store_config):
    UpstreamDouble.models = []
    with serving(UpstreamDouble) as port:
        config = {
            "version": "2", "image_name": "wandb-training", "apis": ["inference", "trajectories"],
            "providers": {
                "inference": [{"provider_id": "up", "provider_type": "remote::openai",
                               "config": {"url": f"http://127.0.0.1:{port}/v1", "api_key": "sk-upstream"}}],
                "trajectories": [{"provider_id": "traj", "provider_type": "inline::sql",
                                  "config": {"store": store_config.model_dump(exclude_none=True)}}],
            },
            "models": [{"model_id": BASE, "provider_id": "up", "provider_model_id": "upstream-qwen", "model_type": "llm"}],
            "server": {"auth": {"api_keys": [KEY]}},
        }
        run_yaml = tmp_path / "run.yaml"
        run_yaml.write_text(yaml.safe_dump(config))
        with ServerProcess(str(run_yaml), home=tmp_path / "home") as proc:
            proc.store_config, proc.tmp_home = store_config, tmp_path / "home"
            yield proc


def choice(content: str, *, tool: bool = False):
    from openai.types.chat.chat_completion import Choice

    message = {"role": "assistant", "content": None if tool else content}
    if tool:
        message["tool_calls"] = [{"id": "call_1", "type": "function",
                                  "function": {"name": "add", "arguments": '{"a": 2, "b": 2}'}}]
    return Choice.model_validate({
        "index": 0, "finish_reason": "tool_calls" if tool else "stop", "message": message,
        "logprobs": {"content": [{"token": content, "logprob": -0.25, "bytes": [52], "top_logprobs": [
            {"token": content, "logprob": -0.25, "bytes": [52]}]}]},
    })


TOOLS = [{"type": "function", "function": {"name": "add", "parameters": {"type": "object", "properties": {}}}}]


def trajectory(reward: float, **metrics):
    return art.Trajectory(
        messages_and_choices=[
            {"role": "system", "content": "You add."}, {"role": "user", "content": "2+2?"},
            choice("", tool=True), {"role": "tool", "tool_call_id": "call_1", "content": "4"}, choice("4"),
        ],
        tools=TOOLS, reward=reward, metrics=metrics, metadata={"scenario_id": "s1", "level": 2},
        additional_histories=[History(messages_and_choices=[{"role": "user", "content": "hi"}, choice("hello")])],
        initial_policy_version=0, final_policy_version=0, logs=["started"],
    )


def groups():
    return [
        # rewards 1, 0: mean 0.5, population std 0.5; trainable
        art.TrajectoryGroup([trajectory(1.0, correct=True, duration=1.5), trajectory(0.0, correct=False, duration=2.5)],
                            metrics={"difficulty": 4}),
        # all equal: std 0, not trainable; one rollout raised
        art.TrajectoryGroup([trajectory(0.5, correct=True), trajectory(0.5, correct=True), ValueError("tool crashed")],
                            metrics={"difficulty": 2}),
        # a group of one: no std, not trainable
        art.TrajectoryGroup([trajectory(0.25)]),
    ]


EXPECTED = {
    "train/reward": (1.0 + 0.0 + 0.5 + 0.5 + 0.25) / 5,
    "train/reward_std_dev": (0.5 + 0.0) / 2,
    "train/correct": 3 / 4,
    "train/duration": 2.0,
    "train/exception_rate": 1 / 6,
    "train/num_groups_submitted": 3.0,
    "train/num_groups_trainable": 1.0,
    "train/num_trajectories": 5.0,
    "train/group_metric_difficulty": 3.0,
}


async def record_checkpoints(store_config, home, model_id: str, steps: list[int]) -> None:
    """What a trainer on another replica does: checkpoints straight into the shared store."""
    from providers.inline.trajectories.sql.store import TrajectoryStore
    from stack.storage import sqlstore_from_config

    sql = await sqlstore_from_config(store_config, default_path=home / "wandb-training" / "trajectories.db")
    try:
        store = TrajectoryStore(sql)
        for step in steps:
            await store.add_checkpoint(model_id, step, {"val/reward": step / 10})
    finally:
        await sql.close()


async def test_art_client_creates_logs_lists_and_deletes(server):
    client = art_client.Client(api_key=KEY, base_url=server.base_url + "/v1")
    model = await client.models.create(entity="acme", project="math", name="adder", base_model=BASE)
    assert (model.entity, model.project, model.name, model.base_model) == ("acme", "math", "adder", BASE)
    assert model.id and model.run_id
    again = await client.models.create(entity="acme", project="math", name="adder", base_model=BASE, return_existing=True)
    assert again.id == model.id
    with pytest.raises(ConflictError):
        await client.models.create(entity="acme", project="math", name="adder", base_model=BASE)

    assert await client.models.log(model_id=model.id, trajectory_groups=groups(), split="train") is None
    auth = {"Authorization": f"Bearer {KEY}"}
    async with httpx.AsyncClient(base_url=server.base_url, headers=auth) as http:
        history = (await http.get(f"/v1/preview/models/{model.id}/metrics", params={"split": "train"})).json()["data"]
        unauthorized = await http.get(f"/v1/preview/models/{model.id}/metrics", headers={"Authorization": "Bearer wrong"})
    assert len(history) == 1 and history[0]["step"] == 0
    assert history[0]["metrics"].keys() == EXPECTED.keys()
    assert history[0]["metrics"] == pytest.approx(EXPECTED)
    assert unauthorized.status_code == 401

    # the base model until a checkpoint exists
    oai = OpenAI(base_url=server.base_url + "/v1", api_key=KEY, max_retries=0)
    chat = await asyncio.to_thread(oai.chat.completions.create, model="wandb-artifact:///acme/math/adder",
                                   messages=[{"role": "user", "content": "2+2?"}])
    assert chat.choices[0].message.content == "4" and UpstreamDouble.models == ["upstream-qwen"]

    assert [c async for c in client.models.checkpoints.list(model_id=model.id)] == []
    with pytest.raises(BadRequestError, match="no post_training API"):  # this stack has no trainer
        await client.training_jobs.create(model_id=model.id, trajectory_groups=groups())
    await record_checkpoints(server.store_config, server.tmp_home, model.id, [1, 2, 3])
    steps = [c.step async for c in client.models.checkpoints.list(model_id=model.id, limit=1)]  # one page per checkpoint
    assert steps == [3, 2, 1]
    newest = [c async for c in client.models.checkpoints.list(model_id=model.id, limit=1, order="desc")][0]
    assert newest.metrics == {"val/reward": 0.3}
    # registering again (as art.ServerlessBackend does at start) names the checkpoints the trainer recorded
    await client.models.create(entity="acme", project="math", name="adder", base_model=BASE, return_existing=True)
    await asyncio.to_thread(oai.chat.completions.create, model="wandb-artifact:///acme/math/adder:step2",
                            messages=[{"role": "user", "content": "2+2?"}])
    assert UpstreamDouble.models == ["upstream-qwen", "upstream-qwen"]
    deleted = await client.models.checkpoints.delete(model_id=model.id, steps=[1, 2, 9])
    assert (deleted.deleted_count, deleted.not_found_steps) == (2, [9])
    assert [c.step async for c in client.models.checkpoints.list(model_id=model.id, order="asc")] == [3]
    with pytest.raises(NotFoundError):  # its name went with it
        await asyncio.to_thread(oai.chat.completions.create, model="wandb-artifact:///acme/math/adder:step2",
                                messages=[{"role": "user", "content": "2+2?"}])
    await client.models.log(model_id=model.id, trajectory_groups=groups()[2:], split="val")
    async with httpx.AsyncClient(base_url=server.base_url, headers=auth) as http:
        val = (await http.get(f"/v1/preview/models/{model.id}/metrics", params={"split": "val"})).json()["data"]
    assert val[0]["step"] == 3 and val[0]["metrics"]["val/reward"] == 0.25

    await client.models.delete(model_id=model.id)
    with pytest.raises(NotFoundError):
        await client.models.log(model_id=model.id, trajectory_groups=groups(), split="train")
    with pytest.raises(AuthenticationError):
        await art_client.Client(api_key="wrong", base_url=server.base_url + "/v1").models.create(
            project="math", name="other", base_model=BASE)
    await client.close()
