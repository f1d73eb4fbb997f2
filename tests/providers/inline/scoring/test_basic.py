"""inline::basic through the HTTP API: built-ins listed, scores and aggregations
checked against values computed by hand, every bad input a 400 naming its field."""

from __future__ import annotations

import pytest

from providers.utils.scoring import aggregate

RUN_CONFIG = """\
    version: '2'
    image_name: scoring-basic
    apis: [scoring]
    providers:
      scoring:
      - {provider_id: basic, provider_type: inline::basic, config: {}}
    """

ROWS = [
    {"expected_answer": "Paris", "generated_answer": "Paris"},
    {"expected_answer": "Paris", "generated_answer": "It is Paris."},
    {"expected_answer": "B", "generated_answer": "Answer: B"},
    {"expected_answer": "C", "generated_answer": "The best answer is D"},
]


@pytest.fixture
async def client(serve):
    async with serve(RUN_CONFIG) as client:
        yield client


async def score(client, functions, rows=ROWS):
    return await client.post("/v1/scoring/score", json={"input_rows": rows, "scoring_functions": functions})


async def test_the_built_in_functions_are_listed_with_llama_stack_ids(client):
    listed = (await client.get("/v1/scoring-functions")).json()["data"]
    by_id = {f["identifier"]: f for f in listed}

    assert set(by_id) == {"basic::equality", "basic::subset_of", "basic::regex_parser_multiple_choice_answer"}
    assert {f["provider_id"] for f in listed} == {"basic"}
    assert by_id["basic::equality"]["return_type"] == {"type": "number"}
    assert by_id["basic::equality"]["params"] == {"type": "basic", "aggregation_functions": ["accuracy"]}
    regex = by_id["basic::regex_parser_multiple_choice_answer"]["params"]
    assert regex["type"] == "regex_parser" and len(regex["parsing_regexes"]) > 10
    one = (await client.get("/v1/scoring-functions/basic::subset_of")).json()
    assert one["identifier"] == "basic::subset_of" and one["type"] == "scoring_function"


async def test_scores_and_default_accuracy_match_hand_computed_values(client):
    response = await score(client, {"basic::equality": None, "basic::subset_of": None,
                                    "basic::regex_parser_multiple_choice_answer": None})
    assert response.status_code == 200, response.text
    results = response.json()["results"]

    # equality: only row 0 matches exactly
    assert [r["score"] for r in results["basic::equality"]["score_rows"]] == [1.0, 0.0, 0.0, 0.0]
    assert results["basic::equality"]["aggregated_results"] == {
        "accuracy": {"accuracy": 0.25, "num_correct": 1.0, "num_total": 4}}
    # subset_of: "Paris" in rows 0 and 1, "B" in "Answer: B"; "C" not in "The best answer is D"
    assert [r["score"] for r in results["basic::subset_of"]["score_rows"]] == [1.0, 1.0, 1.0, 0.0]
    assert results["basic::subset_of"]["aggregated_results"]["accuracy"]["accuracy"] == 0.75
    # regex parser: rows 0 and 1 name no letter; row 2 parses B (right), row 3 parses D (wrong)
    regex = results["basic::regex_parser_multiple_choice_answer"]
    assert [r["score"] for r in regex["score_rows"]] == [0.0, 0.0, 1.0, 0.0]
    assert regex["aggregated_results"]["accuracy"] == {"accuracy": 0.25, "num_correct": 1.0, "num_total": 4}


async def test_every_aggregation_function_named_in_the_params(client):
    params = {"type": "basic", "aggregation_functions": ["average", "median", "categorical_count", "accuracy"]}
    response = await score(client, {"basic::subset_of": params})
    aggregated = response.json()["results"]["basic::subset_of"]["aggregated_results"]

    # scores 1, 1, 1, 0
    assert aggregated == {
        "accuracy": {"accuracy": 0.75, "num_correct": 3.0, "num_total": 4},
        "average": {"average": 0.75},
        "median": {"median": 1.0},
        "categorical_count": {"categorical_count": {"0.0": 1, "1.0": 3}},
    }


def test_aggregations_skip_what_is_not_a_number():
    rows = [{"score": 4}, {"score": "2"}, {"score": None}, {"score": "A"}, {"score": 1}, {"score": 3}]
    # numbers: 4, 2, 1, 3 -> mean 2.5, median (2 + 3) / 2; accuracy counts the rest as 0 out of 6
    assert aggregate(rows, ["average", "median", "accuracy", "categorical_count"]) == {
        "average": {"average": 2.5},
        "median": {"median": 2.5},
        "accuracy": {"accuracy": 10 / 6, "num_correct": 10.0, "num_total": 6},
        "categorical_count": {"categorical_count": {"1": 1, "2": 1, "3": 1, "4": 1, "A": 1, "None": 1}},
    }
    assert aggregate([], ["average", "median", "accuracy"]) == {
        "average": {"average": None}, "median": {"median": None},
        "accuracy": {"accuracy": None, "num_correct": 0, "num_total": 0}}


async def test_regex_params_of_the_request_replace_the_defaults(client):
    params = {"type": "regex_parser", "parsing_regexes": [r"choice=(\w)"]}
    response = await score(client, {"basic::regex_parser_multiple_choice_answer": params},
                           rows=[{"expected_answer": "C", "generated_answer": "choice=C"},
                                 {"expected_answer": "C", "generated_answer": "Answer: C"}])
    assert [r["score"] for r in response.json()["results"]["basic::regex_parser_multiple_choice_answer"]["score_rows"]] \
        == [1.0, 0.0]


async def test_a_registered_function_scores_with_its_registered_params(client):
    registered = await client.post("/v1/scoring-functions", json={
        "scoring_fn_id": "letter-after-arrow", "description": "-> X", "return_type": {"type": "number"},
        "provider_scoring_fn_id": "basic::regex_parser_multiple_choice_answer",
        "params": {"type": "regex_parser", "parsing_regexes": [r"-> (\w)"], "aggregation_functions": ["median"]}})
    assert registered.status_code == 200, registered.text

    response = await score(client, {"letter-after-arrow": None},
                           rows=[{"expected_answer": "A", "generated_answer": "-> A"}])
    result = response.json()["results"]["letter-after-arrow"]
    assert result["score_rows"] == [{"score": 1.0}]
    assert result["aggregated_results"]["median"] == {"median": 1.0}


@pytest.mark.parametrize("functions, rows, field", [
    ({"basic::nope": None}, ROWS, "scoring_functions"),
    ({}, ROWS, "scoring_functions"),
    ({"basic::equality": None}, [{"generated_answer": "x"}], "input_rows.0.expected_answer"),
    ({"basic::subset_of": None}, [ROWS[0], {"expected_answer": "x"}], "input_rows.1.generated_answer"),
    ({"basic::subset_of": None}, [{"expected_answer": 3, "generated_answer": "3"}], "input_rows.0.expected_answer"),
    ({"basic::equality": {"type": "regex_parser", "parsing_regexes": ["(.)"]}}, ROWS,
     "scoring_functions.basic::equality.type"),
    ({"basic::regex_parser_multiple_choice_answer": {"type": "regex_parser", "parsing_regexes": ["(unclosed"]}},
     ROWS, "scoring_functions.basic::regex_parser_multiple_choice_answer.parsing_regexes.0"),
    ({"basic::regex_parser_multiple_choice_answer": {"type": "regex_parser", "parsing_regexes": ["no group"]}},
     ROWS, "scoring_functions.basic::regex_parser_multiple_choice_answer.parsing_regexes.0"),
])
async def test_bad_input_is_a_400_naming_the_field(client, functions, rows, field):
    response = await score(client, functions, rows)
    assert response.status_code == 400, response.text
    assert response.json()["detail"].startswith(f"{field}:")


async def test_registering_with_the_wrong_params_type_is_a_400(client):
    response = await client.post("/v1/scoring-functions", json={
        "scoring_fn_id": "bad", "description": "x", "return_type": {"type": "number"},
        "provider_scoring_fn_id": "basic::equality", "params": {"type": "llm_as_judge", "judge_model": "m"}})
    assert response.status_code == 400
    assert response.json()["detail"].startswith("params.type:")
    unknown = await client.post("/v1/scoring-functions", json={
        "scoring_fn_id": "bad", "description": "x", "return_type": {"type": "number"}})
    assert unknown.status_code == 400
    assert unknown.json()["detail"].startswith("provider_scoring_fn_id:")
