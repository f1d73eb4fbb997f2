"""Eval wire types: candidates and task configs pick the right member by ``type``."""

import pytest
from pydantic import TypeAdapter, ValidationError

from stack.apis._jobs import JobStatus
from stack.apis.agents import AgentConfig
from stack.apis.eval import (
    AgentCandidate,
    AppEvalTaskConfig,
    BenchmarkEvalTaskConfig,
    EvalCandidate,
    EvalTaskConfig,
    EvaluateResponse,
    ModelCandidate,
)
from stack.apis.inference import SystemMessage, TopKSamplingStrategy
from stack.apis.scoring import ScoringResult
from stack.apis.scoring_functions import BasicScoringFnParams, LLMAsJudgeScoringFnParams

configs = TypeAdapter(EvalTaskConfig)

MODEL = {
    "type": "model",
    "model": "meta-llama/Llama-3.2-3B-Instruct",
    "sampling_params": {"strategy": {"type": "top_k", "top_k": 10}, "max_tokens": 128, "repetition_penalty": 1.0},
    "system_message": {"role": "system", "content": "Answer with a number."},
}
AGENT = {"type": "agent", "config": {"model": "m", "instructions": "i", "enable_session_persistence": False}}


def test_model_candidate():
    cand = TypeAdapter(EvalCandidate).validate_python(MODEL)
    assert isinstance(cand, ModelCandidate)
    assert isinstance(cand.system_message, SystemMessage)
    assert isinstance(cand.sampling_params.strategy, TopKSamplingStrategy)


def test_agent_candidate():
    cand = TypeAdapter(EvalCandidate).validate_python(AGENT)
    assert isinstance(cand, AgentCandidate) and isinstance(cand.config, AgentConfig)


def test_model_candidate_needs_sampling_params():
    with pytest.raises(ValidationError):
        TypeAdapter(EvalCandidate).validate_python({"type": "model", "model": "m"})


def test_benchmark_config_round_trips():
    data = {"type": "benchmark", "eval_candidate": MODEL, "num_examples": 5}
    cfg = configs.validate_python(data)
    assert isinstance(cfg, BenchmarkEvalTaskConfig)
    assert configs.dump_python(cfg, mode="json", exclude_none=True) == data


def test_app_config_scoring_params_are_typed_per_function():
    data = {
        "type": "app",
        "eval_candidate": AGENT,
        "scoring_params": {
            "llm-as-judge::base": {"type": "llm_as_judge", "judge_model": "m", "judge_score_regexes": ["Score: (\\d)"]},
            "basic::equality": {"type": "basic", "aggregation_functions": ["accuracy"]},
        },
    }
    cfg = configs.validate_python(data)
    assert isinstance(cfg, AppEvalTaskConfig)
    assert isinstance(cfg.scoring_params["llm-as-judge::base"], LLMAsJudgeScoringFnParams)
    assert isinstance(cfg.scoring_params["basic::equality"], BasicScoringFnParams)
    assert configs.validate_json(configs.dump_json(cfg)) == cfg


@pytest.mark.parametrize(
    "data",
    [
        {"type": "leaderboard", "eval_candidate": MODEL},
        {"type": "benchmark", "eval_candidate": {**MODEL, "type": "human"}},
        {"type": "app", "eval_candidate": AGENT, "scoring_params": {"f": {"type": "bleu"}}},
    ],
)
def test_bad_discriminators_are_rejected(data):
    with pytest.raises(ValidationError):
        configs.validate_python(data)


def test_evaluate_response():
    data = {
        "generations": [{"generated_answer": "2"}],
        "scores": {"basic::equality": {"score_rows": [{"score": 1.0}], "aggregated_results": {"accuracy": 1.0}}},
    }
    resp = EvaluateResponse.model_validate(data)
    assert isinstance(resp.scores["basic::equality"], ScoringResult)
    assert resp.model_dump(mode="json") == data


def test_job_status_values():
    assert {s.value for s in JobStatus} == {"completed", "in_progress", "failed", "scheduled"}
