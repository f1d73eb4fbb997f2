"""Which judge replies count as ratings, and how score rows read as numbers."""

from __future__ import annotations

import re

import pytest

from providers.inline.synthetic_data_generation.sample_and_filter._scores import as_number
from providers.inline.synthetic_data_generation.sample_and_filter.config import RATING_REGEXES
from providers.utils.scoring import first_group


@pytest.mark.parametrize("reply, rating", [
    ("Rating: 7", "7"),
    ("I would say Rating: 8.5 because it is clear.", "8.5"),
    ("The response is 5 out of 10.", "5"),
    ("6/10", "6"),
    ("  9. ", "9"),
    ("The No.1 French female figure", None),  # a digit in a reply is no rating
    ("The answer is 10.", None),
])
def test_the_default_judge_reads_ratings_not_any_digit(reply, rating):
    assert first_group([re.compile(r) for r in RATING_REGEXES], reply) == rating


def test_score_rows_read_as_numbers_and_say_why_not():
    assert as_number({"score": "7", "judge_feedback": "Rating: 7"}) == (7.0, {"judge_feedback": "Rating: 7"})
    assert as_number({"score": 1}) == (1.0, {})
    assert as_number({"score": True}) == (1.0, {})
    assert as_number({"score": "B"}) == (None, {"error": "the score 'B' is not a number"})
    assert as_number({"score": "nan"}) == (None, {"error": "the score 'nan' is not a number"})
    assert as_number({"score": None, "error": "no judge_score_regexes matched the judgement"}) == (
        None, {"error": "no judge_score_regexes matched the judgement"})
