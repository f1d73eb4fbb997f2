"""One suite for every scoring provider: built-ins listed, one score row per
input row keyed by the requested id, score-batch agreeing with score, and bad
input a 400 naming the field. LLM judges are test doubles (a scripted
inference provider; an OpenAI-compatible server on loopback)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from tests.providers.inline.scoring.test_braintrust import judge as braintrust_judge
from tests.providers.remote.inference.doubles import FakeOpenAIUpstream

ROW = {"input_query": "What is the capital of France?", "expected_answer": "Paris", "generated_answer": "Paris"}

COMMON = """\
    version: '2'
    image_name: conformance
    apis: [inference, datasetio, scoring]
    providers:
      inference:
      - provider_id: judge
        provider_type: inline::scripted-judge
        config: {{replies: {{"Predicted answer: Paris": "A"}}}}
      datasetio:
      - provider_id: rows
        provider_type: inline::in-memory-rows
        config: {{rows: {{qa: [{row}, {row}, {row}]}}}}
      scoring:
      - {scoring}
    models:
    - {{model_id: Llama3.1-405B-Instruct, provider_id: judge, model_type: llm}}
    datasets:
    - {{dataset_id: qa, provider_id: rows, url: {{uri: "file:///qa.jsonl"}},
       dataset_schema: {{input_query: {{type: string}}, expected_answer: {{type: string}}, generated_answer: {{type: string}}}}}}
    """


@dataclass(frozen=True)
class Case:
    provider: str  # its provider_type and its line under providers.scoring
    scoring: str
    function: str  # a built-in whose None params work here
    builtins: int
    column: str  # a column the function reads
    wrong_params: dict


CASES = [
    Case("inline::basic", "{provider_id: basic, provider_type: inline::basic, config: {}}", "basic::equality", 3,
         "expected_answer", {"type": "llm_as_judge", "judge_model": "m"}),
    Case("inline::llm-as-judge", "{provider_id: llm-as-judge, provider_type: inline::llm-as-judge, config: {}}",
         "llm-as-judge::405b-simpleqa", 2, "generated_answer", {"type": "basic"}),
    Case("inline::braintrust", "{{provider_id: braintrust, provider_type: inline::braintrust, "
         "config: {{openai_base_url: '{url}', judge_model: j, embedding_model: e}}}}",
         "braintrust::factuality", 9, "input_query", {"type": "regex_parser"}),
]


@pytest.fixture(params=CASES, ids=[c.provider for c in CASES])
async def stack(request, serve):
    case = request.param
    upstream = FakeOpenAIUpstream()
    upstream.default = braintrust_judge
    await upstream.start()
    scoring = case.scoring.format(url=upstream.url) if "{url}" in case.scoring else case.scoring
    row = "{input_query: 'What is the capital of France?', expected_answer: Paris, generated_answer: Paris}"
    try:
        async with serve(COMMON.format(scoring=scoring, row=row)) as client:
            yield case, client
    finally:
        await upstream.stop()


async def score(client, functions, rows):
    return await client.post("/v1/scoring/score", json={"input_rows": rows, "scoring_functions": functions})


async def test_the_built_ins_are_listed_as_the_providers(stack):
    case, client = stack
    listed = (await client.get("/v1/scoring-functions")).json()["data"]
    assert len(listed) == case.builtins
    assert case.function in {f["identifier"] for f in listed}
    assert all(f["return_type"] == {"type": "number"} and f["params"]["type"] for f in listed)


async def test_one_score_row_per_input_row_keyed_by_the_requested_id(stack):
    case, client = stack
    response = await score(client, {case.function: None}, [ROW, ROW])
    assert response.status_code == 200, response.text
    result = response.json()["results"][case.function]
    assert len(result["score_rows"]) == 2 and all("score" in r for r in result["score_rows"])
    assert isinstance(result["aggregated_results"], dict)

    empty = await score(client, {case.function: None}, [])
    assert empty.status_code == 200 and empty.json()["results"][case.function]["score_rows"] == []


async def test_score_batch_scores_the_dataset_like_score(stack):
    case, client = stack
    batch = await client.post("/v1/scoring/score-batch", json={
        "dataset_id": "qa", "scoring_functions": {case.function: None}, "save_results_dataset": True})
    assert batch.status_code == 200, batch.text
    direct = await score(client, {case.function: None}, [ROW] * 3)
    assert batch.json()["results"][case.function] == direct.json()["results"][case.function]
    saved = (await client.get("/v1/datasetio/rows", params={"dataset_id": batch.json()["dataset_id"], "rows_in_page": 5})).json()
    assert saved["total_count"] == 3


@pytest.mark.parametrize("bad", ["unknown", "column", "params"])
async def test_bad_input_is_a_400_naming_the_field(stack, bad):
    case, client = stack
    functions, rows, field = {case.function: None}, [ROW], None
    if bad == "unknown":
        functions, field = {"no::such-function": None}, "scoring_functions"
    elif bad == "column":
        rows, field = [{k: v for k, v in ROW.items() if k != case.column}], f"input_rows.0.{case.column}"
    else:
        functions, field = {case.function: case.wrong_params}, f"scoring_functions.{case.function}"
    response = await score(client, functions, rows)
    assert response.status_code == 400, response.text
    assert response.json()["detail"].startswith(field)
