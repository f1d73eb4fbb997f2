"""Scoring functions: the params union, the resource and its registration."""

import pytest
from pydantic import TypeAdapter, ValidationError

from stack.apis._types import NumberType
from stack.apis.scoring_functions import (
    AggregationFunctionType,
    BasicScoringFnParams,
    LLMAsJudgeScoringFnParams,
    RegexParserScoringFnParams,
    ScoringFn,
    ScoringFnInput,
    ScoringFnParams,
    ScoringFunctions,
)

params = TypeAdapter(ScoringFnParams)

SAMPLES = [
    (
        {
            "type": "llm_as_judge",
            "judge_model": "meta-llama/Llama-3.1-8B-Instruct",
            "prompt_template": "Rate {generated_answer} against {expected_answer}",
            "judge_score_regexes": [r"Score: (\d+)"],
            "aggregation_functions": ["average", "median"],
        },
        LLMAsJudgeScoringFnParams,
    ),
    (
        {"type": "regex_parser", "parsing_regexes": [r"Answer: ([A-D])"], "aggregation_functions": ["accuracy"]},
        RegexParserScoringFnParams,
    ),
    ({"type": "basic", "aggregation_functions": ["categorical_count"]}, BasicScoringFnParams),
]


@pytest.mark.parametrize("payload,cls", SAMPLES)
def test_each_params_member_parses_and_round_trips(payload, cls):
    parsed = params.validate_python(payload)
    assert type(parsed) is cls
    assert parsed.model_dump(mode="json") == payload
    assert all(isinstance(a, AggregationFunctionType) for a in parsed.aggregation_functions)


def test_bad_discriminator_and_bad_aggregation_are_rejected():
    with pytest.raises(ValidationError):
        params.validate_python({"type": "exact_match"})
    with pytest.raises(ValidationError, match="aggregation_functions"):
        params.validate_python({"type": "basic", "aggregation_functions": ["mode"]})


def test_llm_as_judge_needs_a_judge_model():
    with pytest.raises(ValidationError, match="judge_model"):
        params.validate_python({"type": "llm_as_judge"})


def test_scoring_fn_round_trips_with_params():
    payload = {
        "identifier": "basic::equality",
        "provider_resource_id": "equality",
        "provider_id": "basic",
        "type": "scoring_function",
        "description": "Exact string match",
        "metadata": {},
        "return_type": {"type": "number"},
        "params": {"type": "basic", "aggregation_functions": ["accuracy"]},
    }
    fn = ScoringFn.model_validate(payload)
    assert isinstance(fn.return_type, NumberType) and isinstance(fn.params, BasicScoringFnParams)
    assert fn.model_dump(mode="json") == payload


def test_scoring_fn_input_forbids_unknown_keys():
    entry = {"scoring_fn_id": "my::judge", "return_type": {"type": "number"}}
    assert ScoringFnInput.model_validate(entry).metadata == {}
    with pytest.raises(ValidationError, match="retrun_type"):
        ScoringFnInput.model_validate({**entry, "retrun_type": {"type": "string"}})


def test_register_body_requires_description_and_return_type(body_model):
    model = body_model(ScoringFunctions.register_scoring_function)
    body = model.model_validate(
        {
            "scoring_fn_id": "my::judge",
            "description": "judge",
            "return_type": {"type": "number"},
            "params": {"type": "llm_as_judge", "judge_model": "m"},
        }
    )
    assert isinstance(body.params, LLMAsJudgeScoringFnParams)
    with pytest.raises(ValidationError, match="description"):
        model.model_validate({"scoring_fn_id": "x", "return_type": {"type": "number"}})
