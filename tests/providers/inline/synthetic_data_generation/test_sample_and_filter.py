"""inline::sample-and-filter over HTTP in-process, on named test doubles: an inference
provider with scripted answers and scoring providers that rate by length or
record the judge params they were sent."""

from __future__ import annotations

import asyncio
import json
import time
from collections import defaultdict

import pytest
from pydantic import BaseModel

import stack
from providers.inline.synthetic_data_generation.sample_and_filter.config import RATING_TEMPLATE
from stack.apis.inference import ChatCompletionResponse, CompletionMessage, StopReason
from stack.apis.scoring import ScoreResponse, ScoringResult
from stack.errors import BadRequestError, UpstreamError
from stack.plugins import get_plugin_manager
from stack.registry import ProviderSpec
from tests.support import app_from_yaml, serve_app

#: what the scripted model says to each prompt, call after call
SCRIPT = {"capital of France?": ["Paris", "It is Paris.", "Lyon"], "2+2?": ["4", "four", "2+2 is 4"]}


class _Empty(BaseModel):
    pass


class ScriptedInference:
    """Test double inference: the next scripted answer for the last user message; fails or waits when told."""

    def __init__(self) -> None:
        self.calls: dict[str, int] = defaultdict(int)
        self.fail_prompts: set[str] = set()
        self.delay = 0.0
        self.seen: list = []

    async def chat_completion(self, model_id: str, messages, sampling_params=None, **_kwargs) -> ChatCompletionResponse:
        prompt = messages[-1].content
        self.seen.append((model_id, [m.role for m in messages], sampling_params, prompt))
        await asyncio.sleep(self.delay)
        if prompt in self.fail_prompts:
            raise UpstreamError("the scripted model is down")
        if prompt == "refused":
            raise BadRequestError("an image needs a url or data", field="messages.content.image")
        answers = SCRIPT.get(prompt, ["?"])
        answer = answers[self.calls[prompt] % len(answers)]
        self.calls[prompt] += 1
        return ChatCompletionResponse(completion_message=CompletionMessage(content=answer, stop_reason=StopReason.end_of_turn))

    async def completion(self, model_id: str, content, **_kwargs):
        raise AssertionError("not used")

    async def embeddings(self, model_id: str, contents, **_kwargs):
        raise AssertionError("not used")


class LengthScoring:
    """Test double scoring: the score is the answer's length; the judge function records its params and says 'Rating: 7'."""

    def __init__(self) -> None:
        self.params: list = []

    async def score(self, input_rows, scoring_functions) -> ScoreResponse:
        results = {}
        for fn, params in scoring_functions.items():
            self.params.append(params)
            if fn == "length":
                rows = [{"score": float(len(r["generated_answer"]))} for r in input_rows]
            elif fn == "mute":
                rows = [{"score": None, "error": "no judge_score_regexes matched the judgement"} for r in input_rows]
            else:
                rows = [{"score": "7", "judge_feedback": f"Rating: 7 for {r['input_query']}"} for r in input_rows]
            results[fn] = ScoringResult(score_rows=rows, aggregated_results={})
        return ScoreResponse(results=results)

    async def score_batch(self, dataset_id, scoring_functions, save_results_dataset=False):
        raise AssertionError("not used")


class Doubles:
    inference = ScriptedInference()
    scoring = LengthScoring()

    @stack.hookimpl
    def register_providers(self, register):
        for api, kind, impl in [("inference", "scripted", self.inference), ("scoring", "length", self.scoring)]:
            async def create(config, context, impl=impl):
                return impl
            register(ProviderSpec(api=api, provider_type=f"inline::{kind}-test", config=_Empty, factory=create))


def run_config(**sdg) -> str:
    config = {"num_candidates": 3, "top_k": 1, "seed": 7, **sdg}
    return f"""\
    version: '2'
    image_name: sdg-test
    apis: [synthetic_data_generation, scoring, inference]
    providers:
      synthetic_data_generation:
      - {{provider_id: sdg, provider_type: inline::sample-and-filter, config: {config!r}}}
      scoring:
      - {{provider_id: lengths, provider_type: inline::length-test, config: {{}}}}
      inference:
      - {{provider_id: scripted, provider_type: inline::scripted-test, config: {{}}}}
    models:
    - {{model_id: scripted-1, provider_id: scripted, model_type: llm}}
    - {{model_id: embedder, provider_id: scripted, model_type: embedding, metadata: {{embedding_dimension: 4}}}}
    scoring_fns:
    - {{scoring_fn_id: length, provider_id: lengths, description: answer length, return_type: {{type: number}}}}
    - {{scoring_fn_id: mute, provider_id: lengths, description: a judge that never rates, return_type: {{type: number}}}}
    - scoring_fn_id: judge
      provider_id: lengths
      description: an LLM judge without a prompt
      return_type: {{type: string}}
      params: {{type: llm_as_judge, judge_model: some-405b}}
    """


@pytest.fixture
def app(tmp_path, monkeypatch):
    monkeypatch.setenv("POLYSTACK_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(Doubles, "inference", ScriptedInference())
    monkeypatch.setattr(Doubles, "scoring", LengthScoring())

    def make(**sdg):
        pm = get_plugin_manager(load_entry_points=False)
        pm.register(Doubles(), name="sdg-doubles")
        return app_from_yaml(tmp_path, run_config(**sdg), pm)
    return make


USER = lambda text: {"role": "user", "content": text}  # noqa: E731
TWO = [{"role": "system", "content": "Be brief."}, USER("capital of France?"), USER("2+2?")]


async def generate(client, **body):
    return await client.post("/v1/synthetic-data-generation/generate",
                             json={"dialogs": TWO, "filtering_function": "top_k", "model": "scripted-1", **body})


async def test_top_k_keeps_the_best_candidate_of_each_dialog(app):
    async with serve_app(app(scoring_fn_id="length")) as client:
        response = await generate(client)
        jobs = (await client.get("/v1/jobs", params={"kind": "synthetic_data_generation"})).json()["data"]
    assert response.status_code == 200, response.text
    body = response.json()
    assert [(r["dialog_index"], r["prompt"], r["response"], r["score"]) for r in body["synthetic_data"]] == [
        (0, "capital of France?", "It is Paris.", 12.0), (1, "2+2?", "2+2 is 4", 8.0)]
    first = body["synthetic_data"][0]
    assert first["candidate_index"] == 1
    assert first["messages"] == [{"role": "system", "content": "Be brief."},
                                 {"role": "user", "content": "capital of France?", "context": None}]
    stats = body["statistics"]
    assert {k: stats[k] for k in ("dialogs", "candidates", "scored", "kept", "failed_candidates", "mean_kept_score")} == {
        "dialogs": 2, "candidates": 6, "scored": 6, "kept": 2, "failed_candidates": 0, "mean_kept_score": 10.0}
    assert stats["mean_score"] == pytest.approx((5 + 12 + 4 + 1 + 4 + 8) / 6)
    # every request is a job: it is listed, completed, with the same data as its result
    assert [j["job_id"] for j in jobs] == [stats["job_id"]]
    assert (jobs[0]["status"], jobs[0]["progress"]) == ("completed", 1.0)
    # the model saw the shared system message and the config's sampling params
    model_id, roles, sampling, _prompt = Doubles.inference.seen[0]
    assert (model_id, roles, sampling.max_tokens, sampling.strategy.type) == ("scripted-1", ["system", "user"], 256, "top_p")


@pytest.mark.parametrize("function, kept", [
    ("none", [["It is Paris.", "Paris", "Lyon"], ["2+2 is 4", "four", "4"]]),
    ("top_p", [["It is Paris.", "Paris"], ["2+2 is 4", "four"]]),  # 0.8 of 21: 12 + 5 (.81); of 13: 8 + 4 (.92)
    ("top_k_top_p", [["It is Paris."], ["2+2 is 4"]]),  # and top_k 1
])
async def test_the_filtering_function_decides_what_is_kept(app, function, kept):
    async with serve_app(app(scoring_fn_id="length", top_p=0.8)) as client:
        body = (await generate(client, filtering_function=function)).json()
    by_dialog = [[r["response"] for r in body["synthetic_data"] if r["dialog_index"] == i] for i in (0, 1)]
    assert by_dialog == kept


async def test_an_llm_judge_without_a_prompt_gets_the_configured_judge_and_its_ratings_are_numbers(app):
    async with serve_app(app(scoring_fn_id="judge", judge={"model": "scripted-1"})) as client:
        body = (await generate(client, filtering_function="none")).json()
    [params] = {p.model_dump_json(): p for p in Doubles.scoring.params}.values()
    assert (params.judge_model, params.prompt_template) == ("scripted-1", RATING_TEMPLATE)
    assert params.judge_score_regexes[0] == r"Rating:\s*(\d+(?:\.\d+)?)"
    assert {r["score"] for r in body["synthetic_data"]} == {7.0}
    assert body["synthetic_data"][0]["score_details"] == {"judge_feedback": "Rating: 7 for capital of France?"}


async def test_unrated_candidates_are_kept_only_by_none_and_random_and_statistics_say_why(app):
    async with serve_app(app(scoring_fn_id="mute")) as client:
        top_k = (await generate(client, filtering_function="top_k")).json()
        random_ = (await generate(client, filtering_function="random")).json()
    assert top_k["synthetic_data"] == []
    assert (top_k["statistics"]["scored"], top_k["statistics"]["first_scoring_error"]) == (
        0, "no judge_score_regexes matched the judgement")
    assert [(r["dialog_index"], r["score"]) for r in random_["synthetic_data"]] == [(0, None), (1, None)]


async def test_a_large_request_answers_with_a_job_whose_result_is_the_data(app):
    async with serve_app(app(scoring_fn_id="length", max_sync_candidates=5)) as client:
        response = await generate(client)
        stats = response.json()["statistics"]
        deadline = time.monotonic() + 10
        while (job := (await client.get(f"/v1/jobs/{stats['job_id']}")).json())["status"] not in ("completed", "failed"):
            assert time.monotonic() < deadline, job
            await asyncio.sleep(0.05)
    assert response.status_code == 200 and response.json()["synthetic_data"] == []
    assert (stats["status"], stats["candidates_requested"], stats["result"]) == (
        "scheduled", 6, f"/v1/jobs/{stats['job_id']}")
    assert job["status"] == "completed" and job["kind"] == "synthetic_data_generation"
    assert [r["response"] for r in job["result"]["synthetic_data"]] == ["It is Paris.", "2+2 is 4"]
    assert job["message"] == "6 of 6 candidates generated, 6 scored"


async def test_a_cancelled_job_stops(app):
    Doubles.inference.delay = 30.0
    async with serve_app(app(scoring_fn_id="length", max_sync_candidates=0)) as client:
        job_id = (await generate(client)).json()["statistics"]["job_id"]
        await client.delete(f"/v1/jobs/{job_id}")
        deadline = time.monotonic() + 10
        while (job := (await client.get(f"/v1/jobs/{job_id}")).json())["status"] in ("scheduled", "in_progress"):
            assert time.monotonic() < deadline, job
            await asyncio.sleep(0.05)
    assert job["status"] == "cancelled" and job["result"] is None


async def test_failed_candidates_are_counted_and_a_model_that_answers_nothing_is_a_502(app):
    Doubles.inference.fail_prompts = {"2+2?"}
    async with serve_app(app(scoring_fn_id="length")) as client:
        partly = await generate(client)
        Doubles.inference.fail_prompts = {"2+2?", "capital of France?"}
        down = await generate(client)
    stats = partly.json()["statistics"]
    assert (stats["candidates"], stats["failed_candidates"], stats["kept"]) == (3, 3, 1)
    assert stats["first_error"] == "the scripted model is down"
    assert down.status_code == 502 and down.json()["detail"] == "the scripted model is down"


@pytest.mark.parametrize("body, status, detail", [
    ({"dialogs": []}, 400, "dialogs: "),
    ({"dialogs": [USER("a?"), {"role": "assistant", "content": "b", "stop_reason": "end_of_turn"}]}, 400, "dialogs: "),
    ({"model": "no-such-model"}, 404, "model: Model 'no-such-model' not found"),
    ({"model": "embedder"}, 400, "model: model 'embedder' is an embedding model"),
    ({"model": None}, 400, "model: name the model"),
    ({"filtering_function": "top_n"}, 422, "body.filtering_function"),
    ({"dialogs": [USER("a?"), USER("refused")]}, 400,
     "dialogs: the model refused the dialog ending at dialogs[1]: messages.content.image: an image needs"),
    ({"dialogs": [{"role": "robot", "content": "x"}]}, 422, "body.dialogs"),
])
async def test_bad_requests_are_4xx_naming_the_field(app, body, status, detail):
    async with serve_app(app(scoring_fn_id="length")) as client:
        response = await generate(client, **body)
    assert response.status_code == status, response.text
    assert response.json()["error"]["message"].startswith(detail), response.json()
    if "refused" not in detail:  # what can be checked is checked before any model call
        assert Doubles.inference.seen == []


async def test_too_many_dialogs_and_a_missing_scoring_function_are_refused_before_any_work(app):
    async with serve_app(app(scoring_fn_id="length", max_dialogs=1)) as client:
        many = await generate(client)
    async with serve_app(app(scoring_fn_id="no-such-fn")) as client:
        unknown = await generate(client)
    assert many.status_code == 400 and many.json()["detail"].startswith("dialogs: holds 2 dialogs")
    assert unknown.status_code == 422 and "scoring_fn_id" in unknown.json()["detail"]
    assert Doubles.inference.seen == []


async def test_the_default_model_serves_a_request_that_names_none(app):
    async with serve_app(app(scoring_fn_id="length", default_model="scripted-1")) as client:
        response = await client.post("/v1/synthetic-data-generation/generate",
                                     json={"dialogs": [USER("2+2?")], "filtering_function": "top_k"})
    assert response.status_code == 200, response.text
    assert response.json()["statistics"]["model"] == "scripted-1"


async def test_a_client_that_goes_away_cancels_the_job_it_waited_for(app):
    Doubles.inference.delay = 30.0
    body = json.dumps({"dialogs": TWO, "filtering_function": "top_k", "model": "scripted-1"}).encode()
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
             "path": "/v1/synthetic-data-generation/generate", "raw_path": b"/v1/synthetic-data-generation/generate",
             "query_string": b"", "root_path": "", "headers": [(b"content-type", b"application/json")],
             "client": ("127.0.0.1", 1), "server": ("polystack", 80)}
    messages = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive():
        if messages:
            return messages.pop(0)
        await asyncio.sleep(0.3)  # the job has started by then; then the client hangs up
        return {"type": "http.disconnect"}

    async def send(_message):
        pass

    async with serve_app(app(scoring_fn_id="length")) as client:
        await asyncio.wait_for(client.app(scope, receive, send), timeout=10)
        deadline = time.monotonic() + 10
        while (jobs := (await client.get("/v1/jobs", params={"kind": "synthetic_data_generation"})).json()["data"]) \
                and jobs[0]["status"] in ("scheduled", "in_progress"):
            assert time.monotonic() < deadline, jobs
            await asyncio.sleep(0.05)
    assert [j["status"] for j in jobs] == ["cancelled"]
