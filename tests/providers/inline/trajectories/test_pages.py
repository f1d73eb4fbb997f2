"""inline::sql trajectories: the paged listings the console reads (models, a step's groups)."""

from __future__ import annotations

from tests.providers.inline.trajectories.test_sql import DoublesPlugin, app_for, create, traj  # noqa: F401
from tests.support import serve_app


async def log(client, model_id, split, rewards):
    groups = [{"trajectories": [traj(r) for r in rewards[i:i + 2]], "metadata": {"n": i}} for i in range(0, len(rewards), 2)]
    response = await client.post(f"/v1/preview/models/{model_id}/log", json={"split": split, "trajectory_groups": groups})
    assert response.status_code == 200, response.text


async def test_models_are_listed_newest_first_a_page_at_a_time(app_for):
    async with serve_app(app_for()) as client:
        made = [await create(client, name=f"run-{i}") for i in range(3)]
        first = (await client.get("/v1/preview/models", params={"limit": 2})).json()
        second = (await client.get("/v1/preview/models", params={"limit": 2, "offset": 2})).json()
    assert [m["name"] for m in first["data"]] == ["run-2", "run-1"] and first["has_more"] is True
    assert [m["id"] for m in second["data"]] == [made[0]["id"]] and second["has_more"] is False


async def test_a_steps_groups_come_in_log_order_filtered_by_split_and_paged(app_for):
    async with serve_app(app_for()) as client:
        model = await create(client)
        await log(client, model["id"], "train", [1.0, 0.0, 0.5, 0.5, 0.25])  # groups of 2, 2, 1
        await log(client, model["id"], "val", [0.75])
        url = f"/v1/preview/models/{model['id']}/trajectories"
        page1 = (await client.get(url, params={"step": 0, "split": "train", "limit": 2})).json()
        page2 = (await client.get(url, params={"step": 0, "split": "train", "limit": 2, "offset": 2})).json()
        every = (await client.get(url, params={"step": 0})).json()
        later = (await client.get(url, params={"step": 1})).json()
    assert [g["group_index"] for g in page1["data"]] == [0, 1] and page1["has_more"] is True
    assert [[t["reward"] for t in g["group"]["trajectories"]] for g in page1["data"]] == [[1.0, 0.0], [0.5, 0.5]]
    assert page1["data"][0]["group"]["trajectories"][0]["messages_and_choices"][0] == {"role": "user", "content": "2+2?"}
    assert [g["group"]["metadata"] for g in page2["data"]] == [{"n": 4}] and page2["has_more"] is False
    assert [g["split"] for g in every["data"]] == ["train", "train", "train", "val"]
    assert later["data"] == []


async def test_bad_pages_and_unknown_models_are_client_errors(app_for):
    async with serve_app(app_for()) as client:
        model = await create(client)
        url = f"/v1/preview/models/{model['id']}/trajectories"
        too_many = await client.get(url, params={"limit": 101})
        negative = await client.get("/v1/preview/models", params={"offset": -1})
        unknown = await client.get("/v1/preview/models/model-nope/trajectories")
        huge = [await client.get(url, params={"step": 2**70}), await client.get("/v1/preview/models", params={"offset": 2**70})]
    assert too_many.status_code == 422 and "limit" in str(too_many.json()["detail"])
    assert negative.status_code == 422 and "offset" in str(negative.json()["detail"])
    assert unknown.status_code == 404
    assert [r.status_code for r in huge] == [422, 422]  # past what the store holds: refused, not a 500
