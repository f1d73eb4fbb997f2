"""Eval end to end: the real starter (localfs, basic scoring, meta-reference eval,
SmolLM2 on llama.cpp), driven by llama-stack-client 0.1.0 as a user would."""

from __future__ import annotations

import json
import time

import pytest
from llama_stack_client import APIStatusError, LlamaStackClient

from tests.support import ServerProcess, starter_with_server

MODEL = "SmolLM2-135M-Instruct"
QUESTIONS = [("What is 2 + 2? Answer with a number.", "4"), ("Say the word yes.", "yes"),
             ("What colour is the sky? One word.", "blue"), ("Name a fruit.", "apple")]
TASK_CONFIG = {"type": "benchmark", "eval_candidate": {
    "type": "model", "model": MODEL, "sampling_params": {"strategy": {"type": "greedy"}, "max_tokens": 8}}}


def _wait(client: LlamaStackClient, job_id: str, timeout: float = 240) -> str:
    deadline = time.monotonic() + timeout
    while (status := client.eval.jobs.status(job_id=job_id, task_id="qa")) in ("scheduled", "in_progress"):
        assert time.monotonic() < deadline, f"job {job_id} still {status}"
        time.sleep(0.25)
    return status


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    home = tmp_path_factory.mktemp("eval-home")
    data = tmp_path_factory.mktemp("eval-data")
    (data / "qa.jsonl").write_text("".join(
        json.dumps({"input_query": q, "expected_answer": a}) + "\n" for q, a in QUESTIONS[:3]))
    config = starter_with_server(home / "run.yaml", fetch={"allow_dirs": [str(data)]})
    proc = ServerProcess(str(config), home=home).start()
    proc.data = data
    proc.config = config
    yield proc
    proc.stop()


def test_dataset_task_job_results_cancel_and_restart(server):
    client = LlamaStackClient(base_url=server.base_url, timeout=120)
    client.datasets.register(dataset_id="qa", url={"uri": f"file://{server.data}/qa.jsonl"},
                             dataset_schema={"input_query": {"type": "string"}, "expected_answer": {"type": "string"}})
    first = client.datasetio.get_rows_paginated(dataset_id="qa", rows_in_page=2)
    second = client.datasetio.get_rows_paginated(dataset_id="qa", rows_in_page=2, page_token=first.next_page_token)
    assert [r["expected_answer"] for r in first.rows + second.rows] == ["4", "yes", "blue"]
    client.datasetio.append_rows(dataset_id="qa", rows=[{"input_query": QUESTIONS[3][0], "expected_answer": "apple"}])
    assert client.datasetio.get_rows_paginated(dataset_id="qa", rows_in_page=10).total_count == 4

    client.eval_tasks.register(eval_task_id="qa", dataset_id="qa", scoring_functions=["basic::subset_of"])
    job = client.eval.run_eval(task_id="qa", task_config=TASK_CONFIG)
    assert _wait(client, job.job_id) == "completed"
    result = client.eval.jobs.retrieve(job_id=job.job_id, task_id="qa")
    assert len(result.generations) == 4 and all(isinstance(g["generated_answer"], str) for g in result.generations)
    scores = result.scores["basic::subset_of"]
    expected = [float(a in g["generated_answer"])  # subset_of is case-sensitive, as in llama-stack
                for (_, a), g in zip(QUESTIONS, result.generations)]
    assert [row["score"] for row in scores.score_rows] == expected
    assert scores.aggregated_results["accuracy"]["accuracy"] == pytest.approx(sum(expected) / 4)

    # a second job with long answers is cancelled while it runs
    slow = client.eval.run_eval(task_id="qa", task_config={
        **TASK_CONFIG, "eval_candidate": {**TASK_CONFIG["eval_candidate"],
                                          "sampling_params": {"strategy": {"type": "greedy"}, "max_tokens": 400}}})
    client.eval.jobs.cancel(job_id=slow.job_id, task_id="qa")
    assert _wait(client, slow.job_id, timeout=10) == "failed"
    import httpx

    assert httpx.get(f"{server.base_url}/v1/jobs/{slow.job_id}").json()["status"] == "cancelled"

    # a new server on the same home: the finished result is still there
    server.stop()
    server.start()
    client = LlamaStackClient(base_url=server.base_url, timeout=120)
    again = client.eval.jobs.retrieve(job_id=job.job_id, task_id="qa")
    assert again.generations == result.generations


def test_eval_errors_are_4xx(server):
    client = LlamaStackClient(base_url=server.base_url, timeout=60)
    with pytest.raises(APIStatusError) as info:
        client.eval.run_eval(task_id="no-such-task", task_config=TASK_CONFIG)
    assert info.value.status_code == 404
    with pytest.raises(APIStatusError) as info:
        client.eval.evaluate_rows(task_id="qa", input_rows=[{"expected_answer": "x"}],
                                  scoring_functions=["basic::equality"], task_config=TASK_CONFIG)
    assert info.value.status_code == 400 and "input_rows[0]" in info.value.response.json()["detail"]
