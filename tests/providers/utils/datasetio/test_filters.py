"""The filter_condition language: what matches, and a 400 naming the field for what does not parse."""

import pytest

from providers.utils.datasetio.filters import parse_filter
from stack.errors import BadRequestError

ROW = {"a": 1, "b": "x y", "flag": True, "none": None, "odd col": 3, "nested": {"k": 1}}


@pytest.mark.parametrize("condition, expected", [
    ("a == 1", True), ("a == 1.0", True), ("a != 1", False), ("a < 2 and b == 'x y'", True),
    ('b == "x \\"y"', False), ("flag == true", True), ("flag == 1", False), ("none == null", True),
    ("missing == null", True), ("b > 1", False), ("none < 1", False), ("`odd col` >= 3", True),
    ("not a == 1 or b != 'x y'", False), ("not (a == 2 or a == 3)", True), ("a == 1 and (b == 'z' or flag == true)", True),
    ("nested == 1", False),
])
def test_matches(condition, expected):
    assert parse_filter(condition)(ROW) is expected


@pytest.mark.parametrize("condition", [
    "a", "a ==", "== 1", "a = 1", "a == 1 and", "(a == 1", "a == 1)", "a == b", "a == 'unterminated",
    "__import__('os').system('id')", "a == 1; drop", "and == 1", "a == 1" + " or a == 1" * 2000,
])
def test_bad_conditions_name_the_field(condition):
    with pytest.raises(BadRequestError) as info:
        parse_filter(condition)
    assert info.value.field == "filter_condition"


def test_unknown_column_when_columns_are_known():
    with pytest.raises(BadRequestError) as info:
        parse_filter("c == 1", columns=["a", "b"])
    assert "no column 'c'" in info.value.reason
    assert parse_filter("  ") is None
