"""Synthetic data generation wire types."""

import pytest

from stack.apis.synthetic_data_generation import FilteringFunction, SyntheticDataGenerationResponse


def test_synthetic_data_response():
    data = {"synthetic_data": [{"prompt": "p", "response": "r", "score": 0.9}], "statistics": {"kept": 1}}
    assert SyntheticDataGenerationResponse.model_validate(data).model_dump(mode="json") == data
    assert SyntheticDataGenerationResponse.model_validate({"synthetic_data": []}).statistics is None


def test_filtering_functions():
    assert FilteringFunction("top_k_top_p") is FilteringFunction.top_k_top_p
    with pytest.raises(ValueError):
        FilteringFunction("best")
