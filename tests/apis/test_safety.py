"""Safety wire types: what run-shield answers."""

import pytest
from pydantic import ValidationError

from stack.apis.safety import RunShieldResponse, SafetyViolation, ViolationLevel


def test_no_violation_is_an_empty_response():
    resp = RunShieldResponse.model_validate({})
    assert resp.violation is None
    assert RunShieldResponse.model_validate({"violation": None}).violation is None


def test_violation_round_trips():
    payload = {
        "violation": {
            "violation_level": "error",
            "user_message": "I can't answer that.",
            "metadata": {"violation_type": "S1,S2"},
        }
    }
    resp = RunShieldResponse.model_validate(payload)
    assert resp.violation.violation_level is ViolationLevel.error
    assert resp.model_dump(mode="json") == payload


def test_violation_metadata_defaults_to_empty():
    v = SafetyViolation.model_validate({"violation_level": "warn"})
    assert v.metadata == {} and v.user_message is None


def test_unknown_violation_level_is_rejected():
    with pytest.raises(ValidationError):
        SafetyViolation.model_validate({"violation_level": "fatal", "metadata": {}})
