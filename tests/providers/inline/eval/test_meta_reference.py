"""inline::meta-reference eval over HTTP in-process: rows from datasetio, answers from
inference, scores from scoring — each a named test double — and jobs with progress,
cancel and results that outlive the server."""

from __future__ import annotations

import asyncio
import time

import pytest
from pydantic import BaseModel

import stack
from stack.apis.inference import ChatCompletionResponse, CompletionMessage, CompletionResponse, StopReason
from stack.apis.datasetio import PaginatedRowsResult
from stack.apis.scoring import ScoreResponse, ScoringResult
from stack.plugins import get_plugin_manager
from stack.registry import ProviderSpec
from tests.support import app_from_yaml, serve_app

ROWS = [
    {"input_query": "capital of France?", "expected_answer": "Paris"},
    {"chat_completion_input": '[{"role": "user", "content": "capital of Italy?"}]', "expected_answer": "Rome"},
    {"input_query": "capital of Spain?", "expected_answer": "Madrid"},
    {"input_query": "capital of Peru?", "expected_answer": "Lima"},
]
ANSWERS = {"capital of France?": "Paris", "capital of Italy?": "Rome", "capital of Spain?": "Barcelona"}


class _Empty(BaseModel):
    pass


class AtlasInference:
    """Test double inference: answers capitals from a table ('?' when it does not know), slowly when told."""

    delay = 0.0

    async def chat_completion(self, model_id: str, messages, **_kwargs) -> ChatCompletionResponse:
        await asyncio.sleep(self.delay)
        question = messages[-1].content
        return ChatCompletionResponse(completion_message=CompletionMessage(
            content=ANSWERS.get(question, "?"), stop_reason=StopReason.end_of_turn))

    async def completion(self, model_id: str, content, **_kwargs) -> CompletionResponse:
        return CompletionResponse(content=ANSWERS.get(content, "?"), stop_reason=StopReason.end_of_turn)

    async def embeddings(self, model_id: str, contents, **_kwargs):
        raise AssertionError("not used")


class ListRows:
    """Test double datasetio: the rows above under every dataset id, paged by offset."""

    async def get_rows_paginated(self, dataset_id: str, rows_in_page: int, page_token: str | None = None,
                                 filter_condition: str | None = None) -> PaginatedRowsResult:
        start = int(page_token or 0)
        end = start + rows_in_page
        return PaginatedRowsResult(rows=ROWS[start:end], total_count=len(ROWS),
                                   next_page_token=str(end) if end < len(ROWS) else None)

    async def append_rows(self, dataset_id: str, rows) -> None:
        raise AssertionError("not used")


class ExactMatch:
    """Test double scoring: 1.0 when generated_answer equals expected_answer; accuracy aggregated."""

    async def score(self, input_rows, scoring_functions) -> ScoreResponse:
        results = {}
        for fn in scoring_functions:
            rows = [{"score": float(r["generated_answer"] == r["expected_answer"])} for r in input_rows]
            results[fn] = ScoringResult(score_rows=rows, aggregated_results={
                "accuracy": sum(r["score"] for r in rows) / len(rows)})
        return ScoreResponse(results=results)

    async def score_batch(self, dataset_id, scoring_functions, save_results_dataset=False):
        raise AssertionError("not used")


class EvalDoubles:
    """The three test doubles as providers of a throwaway plugin."""

    inference = AtlasInference()

    @stack.hookimpl
    def register_providers(self, register):
        for api, kind, impl in [("inference", "atlas", self.inference), ("datasetio", "list-rows", ListRows()),
                                ("scoring", "exact-match", ExactMatch())]:
            async def create(config, context, impl=impl):
                return impl
            register(ProviderSpec(api=api, provider_type=f"inline::{kind}-test", config=_Empty, factory=create))


RUN_CONFIG = """\
    version: '2'
    image_name: eval-test
    apis: [eval, datasetio, scoring, inference]
    providers:
      eval:
      - {provider_id: meta-reference, provider_type: inline::meta-reference, config: {max_concurrency: 2, rows_in_page: 3}}
      datasetio:
      - {provider_id: rows, provider_type: inline::list-rows-test, config: {}}
      scoring:
      - {provider_id: exact, provider_type: inline::exact-match-test, config: {}}
      inference:
      - {provider_id: atlas, provider_type: inline::atlas-test, config: {}}
    models:
    - {model_id: atlas-1, provider_id: atlas, model_type: llm}
    datasets:
    - dataset_id: capitals
      provider_id: rows
      url: {uri: "data:,unused"}
      dataset_schema: {input_query: {type: string}, expected_answer: {type: string}}
    scoring_fns:
    - {scoring_fn_id: exact, provider_id: exact, description: exact match, return_type: {type: number}}
    eval_tasks:
    - {eval_task_id: capitals-task, dataset_id: capitals, scoring_functions: [exact]}
    """
MODEL_CONFIG = {"type": "benchmark", "eval_candidate": {"type": "model", "model": "atlas-1",
                                                         "sampling_params": {"strategy": {"type": "greedy"}}}}


def doubles_app(tmp_path):
    """The eval stack of RUN_CONFIG over the test doubles (in $POLYSTACK_HOME, which the caller sets)."""
    pm = get_plugin_manager(load_entry_points=False)
    pm.register(EvalDoubles(), name="eval-doubles")
    return app_from_yaml(tmp_path, RUN_CONFIG, pm)


@pytest.fixture
def app(tmp_path, monkeypatch):
    monkeypatch.setenv("POLYSTACK_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(EvalDoubles.inference, "delay", 0.0)
    return lambda: doubles_app(tmp_path)


async def _wait(client, job_id: str, timeout: float = 10.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        job = (await client.get(f"/v1/jobs/{job_id}")).json()
        if job["status"] not in ("scheduled", "in_progress") or time.monotonic() > deadline:
            return job
        await asyncio.sleep(0.05)


async def test_evaluate_rows_generates_then_scores(app):
    async with serve_app(app()) as client:
        response = await client.post("/v1/eval/tasks/capitals-task/evaluations", json={
            "input_rows": ROWS[:3], "scoring_functions": ["exact"], "task_config": MODEL_CONFIG})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["generations"] == [{"generated_answer": a} for a in ("Paris", "Rome", "Barcelona")]
    assert body["scores"]["exact"]["score_rows"] == [{"score": 1.0}, {"score": 1.0}, {"score": 0.0}]
    assert body["scores"]["exact"]["aggregated_results"] == {"accuracy": pytest.approx(2 / 3)}


async def test_a_job_pages_through_the_dataset_reports_progress_and_keeps_its_result(app):
    async with serve_app(app()) as client:
        started = await client.post("/v1/eval/tasks/capitals-task/jobs", json={"task_config": MODEL_CONFIG})
        job_id = started.json()["job_id"]
        job = await _wait(client, job_id)
        status = (await client.get(f"/v1/eval/tasks/capitals-task/jobs/{job_id}")).json()
        result = (await client.get(f"/v1/eval/tasks/capitals-task/jobs/{job_id}/result")).json()
        limited = await client.post("/v1/eval/tasks/capitals-task/jobs",
                                    json={"task_config": {**MODEL_CONFIG, "num_examples": 2}})
        limited_job = await _wait(client, limited.json()["job_id"])
    assert (job["status"], job["progress"], job["kind"]) == ("completed", 1.0, "eval")
    assert status == "completed"
    # 4 rows over pages of 3; the unknown capital of Peru scores 0
    assert [g["generated_answer"] for g in result["generations"]] == ["Paris", "Rome", "Barcelona", "?"]
    assert result["scores"]["exact"]["aggregated_results"] == {"accuracy": 0.5}
    assert len(limited_job["result"]["generations"]) == 2
    # a new server on the same home reads the finished result
    async with serve_app(app()) as client:
        again = await client.get(f"/v1/eval/tasks/capitals-task/jobs/{job_id}/result")
    assert again.json() == result


async def test_cancel_stops_a_running_job_within_seconds(app):
    EvalDoubles.inference.delay = 3.0  # 4 rows, 2 at a time: 6 s of work
    async with serve_app(app()) as client:
        job_id = (await client.post("/v1/eval/tasks/capitals-task/jobs", json={"task_config": MODEL_CONFIG})).json()["job_id"]
        await asyncio.sleep(0.1)
        early = await client.get(f"/v1/eval/tasks/capitals-task/jobs/{job_id}/result")
        asked = time.monotonic()
        cancelled = await client.delete(f"/v1/eval/tasks/capitals-task/jobs/{job_id}")
        job = await _wait(client, job_id)
        stopped_after = time.monotonic() - asked
        status = (await client.get(f"/v1/eval/tasks/capitals-task/jobs/{job_id}")).json()
    assert early.status_code == 409 and "in_progress" in early.json()["detail"]
    assert cancelled.status_code == 200
    assert job["status"] == "cancelled" and job["result"] is None
    assert stopped_after < 2.0  # rows in flight are stopped too: the first answers were due 3 s in
    assert status == "failed"  # the spec's four states have no 'cancelled'


@pytest.mark.parametrize("path, body, status, field", [
    ("/v1/eval/tasks/no-such-task/jobs", {"task_config": MODEL_CONFIG}, 404, None),
    ("/v1/eval/tasks/capitals-task/jobs",
     {"task_config": {**MODEL_CONFIG, "eval_candidate": {**MODEL_CONFIG["eval_candidate"], "model": "nope"}}},
     400, "task_config.eval_candidate.model"),
    ("/v1/eval/tasks/capitals-task/evaluations",
     {"input_rows": [ROWS[0], {"expected_answer": "x"}], "scoring_functions": ["exact"], "task_config": MODEL_CONFIG},
     400, "input_rows[1]"),
    ("/v1/eval/tasks/capitals-task/evaluations",
     {"input_rows": [{"chat_completion_input": "[{\"role\": \"robot\"}]"}], "scoring_functions": ["exact"],
      "task_config": MODEL_CONFIG}, 400, "input_rows[0].chat_completion_input"),
    ("/v1/eval/tasks/capitals-task/evaluations",
     {"input_rows": ROWS[:1], "scoring_functions": [], "task_config": MODEL_CONFIG}, 400, "scoring_functions"),
])
async def test_bad_requests_are_4xx_naming_the_field(app, path, body, status, field):
    async with serve_app(app()) as client:
        response = await client.post(path, json=body)
    assert response.status_code == status, response.text
    if field:
        assert response.json()["detail"].startswith(f"{field}: "), response.json()


async def test_jobs_of_another_task_or_unknown_are_404(app):
    async with serve_app(app()) as client:
        job_id = (await client.post("/v1/eval/tasks/capitals-task/jobs", json={"task_config": MODEL_CONFIG})).json()["job_id"]
        await _wait(client, job_id)
        unknown = await client.get("/v1/eval/tasks/capitals-task/jobs/no-such-job")
        listed = (await client.get("/v1/jobs", params={"kind": "eval"})).json()["data"]
    assert unknown.status_code == 404
    assert [j["job_id"] for j in listed] == [job_id] and listed[0]["result"] is None


async def test_a_result_page_and_the_job_list_page(app):
    async with serve_app(app()) as client:
        ids = []
        for _ in range(3):
            ids.append((await client.post("/v1/eval/tasks/capitals-task/jobs", json={"task_config": MODEL_CONFIG})).json()["job_id"])
            await _wait(client, ids[-1])
        url = f"/v1/eval/tasks/capitals-task/jobs/{ids[0]}/result"
        page = (await client.get(url, params={"limit": 2, "offset": 1})).json()
        whole = (await client.get(url)).json()
        bad = await client.get(url, params={"limit": 0})
        far = await client.get("/v1/jobs", params={"offset": 2**70})
        first = (await client.get("/v1/jobs", params={"kind": "eval", "limit": 2})).json()
        rest = (await client.get("/v1/jobs", params={"kind": "eval", "limit": 2, "offset": 2})).json()
    assert [g["generated_answer"] for g in page["generations"]] == ["Rome", "Barcelona"]
    assert page["scores"]["exact"]["score_rows"] == whole["scores"]["exact"]["score_rows"][1:3]
    assert page["scores"]["exact"]["aggregated_results"] == whole["scores"]["exact"]["aggregated_results"]
    assert bad.status_code == 422 and far.status_code == 422
    # newest first, two a page
    assert [j["job_id"] for j in first["data"]] == ids[:0:-1] and first["has_more"] is True
    assert [j["job_id"] for j in rest["data"]] == ids[:1] and rest["has_more"] is False
