"""DatasetIO: pages of rows and the append body."""

import inspect

import pytest
from pydantic import ValidationError

from stack.apis.datasetio import DatasetIO, PaginatedRowsResult


def test_page_round_trips_with_and_without_next_token():
    page = {"rows": [{"q": "1+1", "a": 2, "tags": ["math"], "extra": None}], "total_count": 10,
            "next_page_token": "1"}
    parsed = PaginatedRowsResult.model_validate(page)
    assert parsed.model_dump(mode="json") == page
    last = PaginatedRowsResult.model_validate({"rows": [], "total_count": 0})
    assert last.next_page_token is None


def test_page_requires_total_count():
    with pytest.raises(ValidationError, match="total_count"):
        PaginatedRowsResult.model_validate({"rows": []})


def test_get_rows_takes_query_params_with_rows_in_page_required():
    params = inspect.signature(DatasetIO.get_rows_paginated).parameters
    assert params["rows_in_page"].default is inspect.Parameter.empty
    assert params["page_token"].default is None and params["filter_condition"].default is None


def test_append_rows_body(body_model):
    model = body_model(DatasetIO.append_rows)
    body = model.model_validate({"dataset_id": "d", "rows": [{"a": 1}, {"a": {"nested": True}}]})
    assert body.rows[1] == {"a": {"nested": True}}
    with pytest.raises(ValidationError, match="rows"):
        model.model_validate({"dataset_id": "d"})
