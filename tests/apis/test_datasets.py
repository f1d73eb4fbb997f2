"""Datasets: the resource, the run-config input and the register request."""

import pytest
from pydantic import ValidationError

from stack.apis._types import ChatCompletionInputType, StringType
from stack.apis.datasets import Dataset, DatasetInput, Datasets, ListDatasetsResponse

DATASET = {
    "identifier": "mmlu",
    "provider_resource_id": "mmlu",
    "provider_id": "huggingface",
    "type": "dataset",
    "dataset_schema": {
        "input_query": {"type": "string"},
        "expected_answer": {"type": "string"},
        "chat_completion_input": {"type": "chat_completion_input"},
    },
    "url": {"uri": "https://huggingface.co/datasets/llamastack/mmlu"},
    "metadata": {"path": "llamastack/mmlu", "split": "test", "rows": 14042},
}


def test_dataset_parses_column_types_and_round_trips():
    ds = Dataset.model_validate(DATASET)
    assert isinstance(ds.dataset_schema["input_query"], StringType)
    assert isinstance(ds.dataset_schema["chat_completion_input"], ChatCompletionInputType)
    assert ds.dataset_id == "mmlu" and ds.url.uri.startswith("https://")
    assert ds.model_dump(mode="json") == DATASET
    listed = ListDatasetsResponse.model_validate({"data": [DATASET]})
    assert listed.model_dump(mode="json") == {"data": [DATASET]}


def test_dataset_rejects_unknown_column_type():
    bad = {**DATASET, "dataset_schema": {"x": {"type": "tensor"}}}
    with pytest.raises(ValidationError, match="dataset_schema"):
        Dataset.model_validate(bad)


def test_dataset_input_mirrors_run_config_and_forbids_typos():
    entry = {
        "dataset_id": "simpleqa",
        "provider_id": "localfs",
        "url": {"uri": "file:///data/simpleqa.jsonl"},
        "dataset_schema": {"input_query": {"type": "string"}},
    }
    parsed = DatasetInput.model_validate(entry)
    assert parsed.metadata == {} and parsed.provider_dataset_id is None
    with pytest.raises(ValidationError, match="datset_schema"):
        DatasetInput.model_validate({**entry, "datset_schema": {}})


def test_register_body_requires_schema_and_url(body_model):
    model = body_model(Datasets.register_dataset)
    body = model.model_validate(
        {"dataset_id": "d", "dataset_schema": {"q": {"type": "string"}}, "url": {"uri": "file:///x"}}
    )
    assert body.metadata is None and body.provider_id is None
    with pytest.raises(ValidationError, match="url"):
        model.model_validate({"dataset_id": "d", "dataset_schema": {}})
