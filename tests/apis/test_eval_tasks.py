"""Eval tasks: the resource, run-config input and registration."""

import pytest
from pydantic import ValidationError

from stack.apis.eval_tasks import EvalTask, EvalTaskInput, EvalTasks, ListEvalTasksResponse

TASK = {
    "identifier": "meta-reference-mmlu",
    "provider_resource_id": "meta-reference-mmlu",
    "provider_id": "meta-reference",
    "type": "eval_task",
    "dataset_id": "mmlu",
    "scoring_functions": ["basic::regex_parser_multiple_choice_answer"],
    "metadata": {},
}


def test_eval_task_round_trips():
    task = EvalTask.model_validate(TASK)
    assert task.eval_task_id == "meta-reference-mmlu"
    assert ListEvalTasksResponse(data=[task]).model_dump(mode="json") == {"data": [TASK]}


def test_eval_task_type_is_fixed():
    with pytest.raises(ValidationError, match="type"):
        EvalTask.model_validate({**TASK, "type": "dataset"})


def test_eval_task_input_forbids_unknown_keys():
    entry = {"eval_task_id": "t", "dataset_id": "d", "scoring_functions": ["basic::equality"]}
    assert EvalTaskInput.model_validate(entry).metadata == {}
    with pytest.raises(ValidationError, match="scoring_fns"):
        EvalTaskInput.model_validate({**entry, "scoring_fns": []})


def test_register_body(body_model):
    model = body_model(EvalTasks.register_eval_task)
    body = model.model_validate({"eval_task_id": "t", "dataset_id": "d", "scoring_functions": []})
    assert body.provider_id is None and body.metadata is None
    with pytest.raises(ValidationError, match="scoring_functions"):
        model.model_validate({"eval_task_id": "t", "dataset_id": "d"})
