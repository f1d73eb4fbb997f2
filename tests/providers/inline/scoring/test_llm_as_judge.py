"""inline::llm-as-judge through the HTTP API, judged by inline::scripted-judge (a
test double inference provider): prompts, grade parsing, unparseable judgements,
bounded concurrency and bad input."""

from __future__ import annotations

import pytest


from .doubles import ScriptedJudge

RUN_CONFIG = """\
    version: '2'
    image_name: scoring-judge
    apis: [inference, scoring]
    providers:
      inference:
      - provider_id: judge
        provider_type: inline::scripted-judge
        config:
          delay: 0.05
          replies: {"Predicted answer: Paris": "A", "Predicted answer: Lyon": "The grade is B.",
                    "rate: good": "Score: 5", "rate: poor": "Score: 1", "rate: odd": "I cannot say",
                    "rate: broken": "!fail"}
      scoring:
      - provider_id: llm-as-judge
        provider_type: inline::llm-as-judge
        config: {max_concurrency: 3}
    models:
    - {model_id: judge-model, provider_id: judge, model_type: llm}
    """

RATING = {"type": "llm_as_judge", "judge_model": "judge-model",
          "prompt_template": "Question {input_query}; rate: {generated_answer}",
          "judge_score_regexes": [r"Score: (\d)"], "aggregation_functions": ["average", "categorical_count"]}


@pytest.fixture
async def client(serve):
    async with serve(RUN_CONFIG) as client:
        yield client


async def score(client, functions, rows):
    return await client.post("/v1/scoring/score", json={"input_rows": rows, "scoring_functions": functions})


async def test_the_built_in_judge_functions_are_listed(client):
    listed = {f["identifier"]: f for f in (await client.get("/v1/scoring-functions")).json()["data"]}
    assert set(listed) == {"llm-as-judge::base", "llm-as-judge::405b-simpleqa"}
    simpleqa = listed["llm-as-judge::405b-simpleqa"]["params"]
    assert simpleqa["type"] == "llm_as_judge" and simpleqa["judge_score_regexes"] == ["(A|B|C)"]
    assert "{generated_answer}" in simpleqa["prompt_template"]


async def test_simpleqa_grades_come_from_the_judges_reply(client):
    params = {"type": "llm_as_judge", "judge_model": "judge-model", "judge_score_regexes": ["(A|B|C)"],
              "prompt_template": "Question: {input_query}\nGold target: {expected_answer}\nPredicted answer: {generated_answer}"}
    rows = [{"input_query": "Capital of France?", "expected_answer": "Paris", "generated_answer": "Paris"},
            {"input_query": "Capital of France?", "expected_answer": "Paris", "generated_answer": "Lyon"}]
    response = await score(client, {"llm-as-judge::405b-simpleqa": params}, rows)
    assert response.status_code == 200, response.text
    result = response.json()["results"]["llm-as-judge::405b-simpleqa"]

    assert result["score_rows"] == [{"score": "A", "judge_feedback": "A"},
                                    {"score": "B", "judge_feedback": "The grade is B."}]
    assert result["aggregated_results"] == {}  # none asked for
    judge = ScriptedJudge.instances[0]
    assert "Gold target: Paris\nPredicted answer: Lyon" in judge.prompts[1]
    assert judge.calls[0]["model_id"] == "judge-model" and judge.calls[0]["sampling_params"].max_tokens == 512


async def test_the_built_in_simpleqa_template_fills_the_row_in(client):
    params = {"type": "llm_as_judge", "judge_model": "judge-model", "judge_score_regexes": ["(A|B|C)"]}
    listed = (await client.get("/v1/scoring-functions/llm-as-judge::405b-simpleqa")).json()
    params["prompt_template"] = listed["params"]["prompt_template"]
    rows = [{"input_query": "Capital of France?", "expected_answer": "Paris", "generated_answer": "Paris"}]
    response = await score(client, {"llm-as-judge::405b-simpleqa": params}, rows)
    assert response.json()["results"]["llm-as-judge::405b-simpleqa"]["score_rows"][0]["score"] == "A"
    assert "Question: Capital of France?" in ScriptedJudge.instances[0].prompts[0]


async def test_unparseable_and_failed_judgements_are_recorded_in_their_rows(client):
    rows = [{"input_query": "q", "generated_answer": g} for g in ("good", "odd", "poor", "broken")]
    response = await score(client, {"llm-as-judge::base": RATING}, rows)
    assert response.status_code == 200, response.text
    result = response.json()["results"]["llm-as-judge::base"]

    assert [r["score"] for r in result["score_rows"]] == ["5", None, "1", None]
    assert result["score_rows"][1] == {"score": None, "judge_feedback": "I cannot say",
                                       "error": "no judge_score_regexes matched the judgement"}
    assert result["score_rows"][3]["error"].startswith("the judge failed: messages:")
    # average of the parsed grades 5 and 1; the counts include the unparsed ones
    assert result["aggregated_results"] == {"average": {"average": 3.0},
                                            "categorical_count": {"categorical_count": {"1": 1, "5": 1, "None": 2}}}


async def test_rows_are_judged_concurrently_but_at_most_max_concurrency_at_once(client):
    rows = [{"input_query": "q", "generated_answer": "good"}] * 10
    response = await score(client, {"llm-as-judge::base": RATING}, rows)
    assert [r["score"] for r in response.json()["results"]["llm-as-judge::base"]["score_rows"]] == ["5"] * 10
    assert ScriptedJudge.instances[0].most_in_flight == 3


async def test_a_registered_judge_function_uses_its_params(client):
    registered = await client.post("/v1/scoring-functions", json={
        "scoring_fn_id": "my-judge", "description": "rates answers", "return_type": {"type": "number"},
        "params": RATING})
    assert registered.status_code == 200, registered.text
    response = await score(client, {"my-judge": None}, [{"input_query": "q", "generated_answer": "poor"}])
    assert response.json()["results"]["my-judge"]["score_rows"][0]["score"] == "1"


@pytest.mark.parametrize("params, rows, field", [
    ({**RATING, "judge_model": "nope"}, [], "scoring_functions.llm-as-judge::base.judge_model"),
    ({**RATING, "prompt_template": None}, [], "scoring_functions.llm-as-judge::base.prompt_template"),
    ({**RATING, "prompt_template": "{0} {"}, [], "scoring_functions.llm-as-judge::base.prompt_template"),
    ({**RATING, "judge_score_regexes": None}, [], "scoring_functions.llm-as-judge::base.judge_score_regexes"),
    ({**RATING, "judge_score_regexes": ["Score: \\d"]}, [], "scoring_functions.llm-as-judge::base.judge_score_regexes.0"),
    ({"type": "basic"}, [], "scoring_functions.llm-as-judge::base.type"),
    (RATING, [{"input_query": "q"}], "input_rows.0.generated_answer"),
])
async def test_bad_input_is_a_400_naming_the_field(client, params, rows, field):
    response = await score(client, {"llm-as-judge::base": params}, rows)
    assert response.status_code == 400, response.text
    assert response.json()["detail"].startswith(f"{field}:")
    assert not ScriptedJudge.instances[0].prompts  # refused before any row was judged
