"""The error-contract check the fuzz suite adds to schemathesis (tests/fuzz/_checks.py)."""

from __future__ import annotations

import pytest

from tests.fuzz._checks import problem

FIELDS = {"model", "messages", "max_tokens"}


@pytest.mark.parametrize("status, body", [
    (400, {"detail": "max_tokens: 4096 is more than the model's context of 2048"}),
    (404, {"detail": "Model 'gpt-9' not found; registered: 'SmolLM2-135M-Instruct'"}),
    (404, {"detail": "agent '' not found; registered: none"}),
    (409, {"detail": "shield 'x1' is already registered with other settings"}),
    (422, {"detail": [{"loc": ["body", "messages"], "msg": "Field required", "type": "missing"}]}),
    (413, {"detail": "request body larger than 16777216 bytes"}),
])
def test_errors_that_say_what_and_where_pass(status, body):
    assert problem(status, body, FIELDS, {"gpt-9", "", "x1"}) is None


@pytest.mark.parametrize("status, body, why", [
    (404, {"detail": "Error"}, "no reason"),
    (404, {"detail": "Not Found"}, "names no field"),
    (400, {"detail": "the request is not valid for this server"}, "names no field"),
    (404, {"detail": "no such thing was registered here"}, "names no field"),
    (422, {"detail": [{"msg": "Field required"}]}, "without loc and msg"),
    (400, {"message": "bad"}, "not the error shape"),
])
def test_errors_without_a_reason_or_a_place_fail(status, body, why):
    assert why in problem(status, body, FIELDS, {"gpt-9"})


def test_a_one_letter_value_counts_only_in_quotes():
    assert problem(404, {"detail": "a job was not found here"}, set(), {"a"}) is not None
    assert problem(404, {"detail": "job 'a' not found"}, set(), {"a"}) is None
