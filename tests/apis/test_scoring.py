"""Scoring: request bodies map function ids to optional params; results round-trip."""

import pytest
from pydantic import ValidationError

from stack.apis.scoring import Scoring, ScoreBatchResponse, ScoreResponse, ScoringResult
from stack.apis.scoring_functions import RegexParserScoringFnParams

RESULT = {
    "score_rows": [{"score": 1.0}, {"score": 0.0}],
    "aggregated_results": {"accuracy": {"accuracy": 0.5, "num_correct": 1, "num_total": 2}},
}


def test_score_body_accepts_null_params_per_function(body_model):
    model = body_model(Scoring.score)
    body = model.model_validate(
        {
            "input_rows": [{"generated_answer": "B", "expected_answer": "B"}],
            "scoring_functions": {
                "basic::equality": None,
                "basic::regex_parser": {"type": "regex_parser", "parsing_regexes": ["(.)"]},
            },
        }
    )
    assert body.scoring_functions["basic::equality"] is None
    assert isinstance(body.scoring_functions["basic::regex_parser"], RegexParserScoringFnParams)
    with pytest.raises(ValidationError):
        model.model_validate({"input_rows": [], "scoring_functions": {"f": {"type": "nope"}}})


def test_score_batch_body_requires_save_results_dataset(body_model):
    model = body_model(Scoring.score_batch)
    with pytest.raises(ValidationError, match="save_results_dataset"):
        model.model_validate({"dataset_id": "d", "scoring_functions": {}})
    body = model.model_validate({"dataset_id": "d", "scoring_functions": {}, "save_results_dataset": False})
    assert body.save_results_dataset is False


def test_responses_round_trip():
    score = {"results": {"basic::equality": RESULT}}
    assert ScoreResponse.model_validate(score).model_dump(mode="json") == score
    batch = ScoreBatchResponse.model_validate(score)
    assert batch.dataset_id is None
    assert isinstance(batch.results["basic::equality"], ScoringResult)
    with_dataset = {"dataset_id": "scored", **score}
    assert ScoreBatchResponse.model_validate(with_dataset).model_dump(mode="json") == with_dataset
