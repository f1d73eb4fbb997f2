"""Synthetic data end to end: `polystack run` of the starter (SmolLM2 on llama.cpp
generates the candidates and, through llm-as-judge, rates them), driven by
llama-stack-client 0.1.0. Asserts mechanics, not the tiny model's wisdom."""

from __future__ import annotations

import time

import httpx
import pytest
import yaml
from llama_stack_client import APIStatusError, LlamaStackClient

from tests.support import REPO, ServerProcess

LLM = "SmolLM2-135M-Instruct"
DIALOGS = [{"role": "system", "content": "Answer in one short sentence."},
           {"role": "user", "content": "What is the capital of France?"},
           {"role": "user", "content": "Name a colour."}]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    home = tmp_path_factory.mktemp("sdg-home")
    config = yaml.safe_load((REPO / "distributions/starter/run.yaml").read_text())
    [sdg] = config["providers"]["synthetic_data_generation"]
    sdg["config"].update(num_candidates=2, seed=3, sampling_params={
        "strategy": {"type": "top_p", "temperature": 0.9, "top_p": 0.95}, "max_tokens": 24})
    for scoring in config["providers"]["scoring"]:
        if scoring["provider_type"] == "inline::llm-as-judge":
            scoring["config"] = {"max_tokens": 12}  # "Rating: N" is a few tokens; SmolLM2 may ramble
    run_yaml = home / "run.yaml"
    run_yaml.write_text(yaml.safe_dump(config))
    with ServerProcess(str(run_yaml), home=home) as proc:
        yield proc.wait_models_ready()


@pytest.fixture(scope="module")
def client(server):
    return LlamaStackClient(base_url=server.base_url, timeout=300)


def test_every_candidate_comes_back_rated_and_the_job_is_listed(client, server):
    response = client.synthetic_data_generation.generate(dialogs=DIALOGS, filtering_function="none")

    rows = response.synthetic_data
    assert sorted((r["dialog_index"], r["candidate_index"]) for r in rows) == [(0, 0), (0, 1), (1, 0), (1, 1)]
    for row in rows:
        assert row["prompt"] == DIALOGS[1 + int(row["dialog_index"])]["content"]
        assert row["messages"][0] == {"role": "system", "content": DIALOGS[0]["content"]}
        assert isinstance(row["response"], str)
        assert isinstance(row["score_details"]["judge_feedback"], str)  # what SmolLM2 said when rating it
        assert row["score"] is None or 0 <= row["score"] <= 10
    stats = response.statistics
    assert (stats["model"], stats["dialogs"], stats["candidates"], stats["kept"]) == (LLM, 2, 4, 4)
    assert stats["scoring_fn_id"] == "llm-as-judge::base"
    assert stats["scored"] == sum(r["score"] is not None for r in rows)
    jobs = httpx.get(f"{server.base_url}/v1/jobs", params={"kind": "synthetic_data_generation"}).json()["data"]
    assert [(j["job_id"], j["status"], j["progress"]) for j in jobs] == [(stats["job_id"], "completed", 1.0)]


def test_top_k_keeps_at_most_the_best_rated_candidate_of_each_dialog(client):
    response = client.synthetic_data_generation.generate(dialogs=DIALOGS[1:2], filtering_function="top_k", model=LLM)
    rows, stats = response.synthetic_data, response.statistics
    assert stats["candidates"] == 2 and stats["kept"] == len(rows)
    # top_k ranks rated candidates only: the best one when SmolLM2 rated any (it often answers no number)
    assert len(rows) == min(1, stats["scored"])
    assert all(isinstance(r["score"], float) for r in rows)


def test_a_request_of_more_than_max_sync_candidates_is_a_job_with_the_data_as_its_result(client):
    dialogs = [{"role": "user", "content": f"Say the number {i}."} for i in range(5)]  # 10 candidates > 8
    response = client.synthetic_data_generation.generate(dialogs=dialogs, filtering_function="random")
    assert response.synthetic_data == [] and response.statistics["status"] == "scheduled"
    path = f"/v1/jobs/{response.statistics['job_id']}"
    deadline = time.monotonic() + 240
    while (job := client.get(path, cast_to=object))["status"] in ("scheduled", "in_progress"):
        assert time.monotonic() < deadline, job
        time.sleep(0.25)
    assert job["status"] == "completed" and job["progress"] == 1.0
    rows = job["result"]["synthetic_data"]
    assert [r["dialog_index"] for r in rows] == [0, 1, 2, 3, 4]  # random keeps one candidate a dialog
    assert [r["prompt"] for r in rows] == [d["content"] for d in dialogs]


def test_bad_requests_are_4xx_naming_the_field(client):
    with pytest.raises(APIStatusError) as info:
        client.synthetic_data_generation.generate(dialogs=DIALOGS[1:2], filtering_function="top_k", model="nope")
    assert info.value.status_code == 404 and info.value.response.json()["detail"].startswith("model: ")
    with pytest.raises(APIStatusError) as info:
        client.synthetic_data_generation.generate(dialogs=[], filtering_function="top_k")
    assert info.value.status_code == 400 and info.value.response.json()["detail"].startswith("dialogs: ")
    with pytest.raises(APIStatusError) as info:
        client.synthetic_data_generation.generate(dialogs=DIALOGS[1:2], filtering_function="top_n")
    assert info.value.status_code == 422
    assert info.value.response.json()["error"]["message"].startswith("body.filtering_function: ")
