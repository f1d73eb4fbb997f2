"""`polystack run` of the starter plus the scoring providers, driven by
llama-stack-client 0.1.0; the judges are the embedded SmolLM2 (through the
inference API for llm-as-judge, through this server's own OpenAI-compatible
routes for braintrust). Asserts mechanics, not the tiny model's wisdom."""

from __future__ import annotations


import pytest
import yaml
from llama_stack_client import APIStatusError, LlamaStackClient

from tests.support import REPO, ServerProcess

LLM = "SmolLM2-135M-Instruct"
ROWS = [
    {"input_query": "What is the capital of France?", "expected_answer": "Paris", "generated_answer": "Paris"},
    {"input_query": "What is the capital of Italy?", "expected_answer": "Rome", "generated_answer": "Milan"},
]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    home = tmp_path_factory.mktemp("scoring-home")
    config = yaml.safe_load((REPO / "distributions/starter/run.yaml").read_text())
    config["apis"].append("scoring")
    config["providers"]["scoring"] = [
        {"provider_id": "basic", "provider_type": "inline::basic", "config": {}},
        {"provider_id": "llm-as-judge", "provider_type": "inline::llm-as-judge", "config": {"max_tokens": 16}},
        {"provider_id": "braintrust", "provider_type": "inline::braintrust", "config": {}},  # this server, SmolLM2
    ]
    run_yaml = home / "run.yaml"
    run_yaml.write_text(yaml.safe_dump(config))
    with ServerProcess(str(run_yaml), home=home) as proc:
        yield proc.wait_models_ready()


@pytest.fixture(scope="module")
def client(server):
    return LlamaStackClient(base_url=server.base_url, timeout=300)


def test_the_built_in_functions_of_every_provider_are_listed(client):
    listed = {f.identifier: f for f in client.scoring_functions.list()}
    assert {"basic::equality", "basic::subset_of", "basic::regex_parser_multiple_choice_answer",
            "llm-as-judge::base", "llm-as-judge::405b-simpleqa",
            "braintrust::factuality", "braintrust::answer-correctness"} <= set(listed)
    assert listed["braintrust::factuality"].provider_id == "braintrust"


def test_basic_judge_and_braintrust_scores_come_back_with_a_row_each(client):
    simpleqa = client.scoring_functions.retrieve("llm-as-judge::405b-simpleqa")
    judge_params = {"type": "llm_as_judge", "judge_model": LLM, "prompt_template": simpleqa.params.prompt_template,
                    "judge_score_regexes": simpleqa.params.judge_score_regexes,
                    "aggregation_functions": ["categorical_count"]}

    response = client.scoring.score(input_rows=ROWS, scoring_functions={
        "basic::equality": None, "llm-as-judge::405b-simpleqa": judge_params, "braintrust::factuality": None})

    equality = response.results["basic::equality"]
    assert [r["score"] for r in equality.score_rows] == [1.0, 0.0]
    assert equality.aggregated_results["accuracy"]["accuracy"] == 0.5
    judged = response.results["llm-as-judge::405b-simpleqa"]
    assert len(judged.score_rows) == 2
    for row in judged.score_rows:  # whatever SmolLM2 said, its reply is there, and a grade or why not
        assert isinstance(row["judge_feedback"], str)
        assert row["score"] in ("A", "B", "C") or row["error"] == "no judge_score_regexes matched the judgement"
    assert sum(judged.aggregated_results["categorical_count"]["categorical_count"].values()) == 2
    factuality = response.results["braintrust::factuality"]
    assert len(factuality.score_rows) == 2
    for row in factuality.score_rows:  # a choice's score, or why SmolLM2's reply did not parse; this server answered
        assert row["score"] in (0, 0.4, 0.6, 1) or (row["score"] is None and "Connection" not in row["error"])
    assert "average" in factuality.aggregated_results


def test_an_unknown_function_is_a_400(client):
    with pytest.raises(APIStatusError) as info:
        client.scoring.score(input_rows=ROWS, scoring_functions={"basic::nope": None})
    assert info.value.status_code == 400
    assert info.value.response.json()["detail"].startswith("scoring_functions: Scoring function 'basic::nope' not found")
