"""score_batch reads a dataset page by page through the datasetio API (the
inline::in-memory-rows test double) and, with save_results_dataset, registers
a results dataset and appends the scored rows to it."""

from __future__ import annotations

import base64

import pytest

from .doubles import InMemoryRows

RUN_CONFIG = """\
    version: '2'
    image_name: scoring-batch
    apis: [datasetio, scoring]
    providers:
      datasetio:
      - provider_id: rows
        provider_type: inline::in-memory-rows
        config:
          page_limit: 2
          rows:
            answers:
            - {expected_answer: "4", generated_answer: "4"}
            - {expected_answer: "4", generated_answer: "four"}
            - {expected_answer: "B", generated_answer: "Answer: B"}
            - {expected_answer: "9", generated_answer: "9"}
            - {expected_answer: "x", generated_answer: "y"}
            broken:
            - {expected_answer: "4", generated_answer: "4"}
            - {expected_answer: "4"}
      scoring:
      - {provider_id: basic, provider_type: inline::basic, config: {}}
    datasets:
    - dataset_id: answers
      provider_id: rows
      url: {uri: "file:///answers.jsonl"}
      dataset_schema: {expected_answer: {type: string}, generated_answer: {type: string}}
    - dataset_id: broken
      provider_id: rows
      url: {uri: "file:///broken.jsonl"}
      dataset_schema: {expected_answer: {type: string}, generated_answer: {type: string}}
    """


@pytest.fixture
async def client(serve):
    async with serve(RUN_CONFIG) as client:
        yield client


async def score_batch(client, dataset_id, functions, save=False):
    return await client.post("/v1/scoring/score-batch", json={
        "dataset_id": dataset_id, "scoring_functions": functions, "save_results_dataset": save})


async def test_every_page_of_the_dataset_is_scored(client):
    response = await score_batch(client, "answers", {"basic::equality": None})
    assert response.status_code == 200, response.text
    body = response.json()

    assert body["dataset_id"] is None
    assert [r["score"] for r in body["results"]["basic::equality"]["score_rows"]] == [1.0, 0.0, 0.0, 1.0, 0.0]
    assert body["results"]["basic::equality"]["aggregated_results"]["accuracy"] == {
        "accuracy": 0.4, "num_correct": 2.0, "num_total": 5}
    assert InMemoryRows.instances[0].pages_served == 3  # 5 rows, 2 a page


async def test_save_results_dataset_registers_a_dataset_holding_the_scored_rows(client):
    response = await score_batch(client, "answers", {"basic::equality": None, "basic::subset_of": None}, save=True)
    assert response.status_code == 200, response.text
    results_id = response.json()["dataset_id"]
    assert results_id.startswith("answers-scored-")

    dataset = (await client.get(f"/v1/datasets/{results_id}")).json()
    assert dataset["provider_id"] == "rows"
    assert dataset["dataset_schema"] == {"expected_answer": {"type": "string"}, "generated_answer": {"type": "string"},
                                         "basic::equality": {"type": "json"}, "basic::subset_of": {"type": "json"}}
    assert dataset["metadata"]["scored_dataset_id"] == "answers"
    header = base64.b64decode(dataset["url"]["uri"].split(",", 1)[1]).decode().strip()
    assert header == "expected_answer,generated_answer,basic::equality,basic::subset_of"

    saved = (await client.get("/v1/datasetio/rows", params={"dataset_id": results_id, "rows_in_page": 2,
                                                          "page_token": "2"})).json()
    assert saved["total_count"] == 5
    assert saved["rows"][0] == {"expected_answer": "B", "generated_answer": "Answer: B",
                                "basic::equality": {"score": 0.0}, "basic::subset_of": {"score": 1.0}}


async def test_bad_datasets_and_rows_are_400s_naming_the_dataset(client):
    unknown = await score_batch(client, "nope", {"basic::equality": None})
    assert unknown.status_code == 400
    assert unknown.json()["detail"].startswith("dataset_id: Dataset 'nope' not found")

    broken = await score_batch(client, "broken", {"basic::equality": None})
    assert broken.status_code == 400
    assert broken.json()["detail"] == "dataset_id: row 1 of dataset 'broken': column 'generated_answer' is missing"

    no_function = await score_batch(client, "answers", {"basic::nope": None})
    assert no_function.status_code == 400
    assert InMemoryRows.instances[0].pages_served == 1  # the broken dataset's only page; nothing read for a bad call


async def test_score_batch_without_a_datasetio_api_is_a_501(serve):
    async with serve("""\
        version: '2'
        image_name: no-datasetio
        apis: [scoring]
        providers:
          scoring:
          - {provider_id: basic, provider_type: inline::basic, config: {}}
        """) as client:
        response = await score_batch(client, "answers", {"basic::equality": None})
    assert response.status_code == 501
    assert "datasetio" in response.json()["detail"]
