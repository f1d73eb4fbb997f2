"""The six filtering functions against selections worked out by hand (seeded draws)."""

from __future__ import annotations

import random

import pytest

from providers.inline.synthetic_data_generation.sample_and_filter._filters import FilterSettings, select, shares
from stack.apis.synthetic_data_generation import FilteringFunction as F

SETTINGS = FilterSettings(top_k=2, top_p=0.9, sigmoid_center=5.0, sigmoid_scale=1.0)


def pick(function, scores, seed=7, **settings):
    return select(function, scores, FilterSettings(**{**SETTINGS.__dict__, **settings}), random.Random(seed))


def test_none_keeps_every_candidate_best_first_unscored_last():
    assert pick(F.none, [3.0, None, 5.0, 3.0]) == [2, 0, 3, 1]


def test_random_keeps_one_whatever_its_score():
    # random.Random(7).randrange(4) == 2: the unscored candidate 2 may be the one
    assert pick(F.random, [1.0, 9.0, None, 4.0]) == [2]
    assert pick(F.random, [1.0], seed=123) == [0]


def test_top_k_keeps_the_k_best_ties_in_candidate_order():
    assert pick(F.top_k, [3.0, 9.0, None, 9.0]) == [1, 3]
    assert pick(F.top_k, [3.0, 9.0, None, 9.0], top_k=1) == [1]
    assert pick(F.top_k, [None, 2.0], top_k=5) == [1]  # fewer scored than k: all of them


@pytest.mark.parametrize("p, kept", [
    (0.3, [0]),            # 8/20 = 0.40 reaches 0.3
    (0.7, [0, 1]),         # 0.40 + 0.35 = 0.75
    (0.9, [0, 1, 2]),      # 0.75 + 0.15 reaches 0.9 exactly
    (1.0, [0, 1, 2, 3]),
])
def test_top_p_keeps_the_fewest_best_reaching_p_of_the_summed_score(p, kept):
    assert pick(F.top_p, [8.0, 7.0, 3.0, 2.0], top_p=p) == kept


def test_top_p_shifts_negative_scores_and_shares_zeros_equally():
    # [-1, 1, 3] shifted by 1: [0, 2, 4], shares of 6: 3 -> 2/3, 1 -> 1/3
    assert pick(F.top_p, [-1.0, 1.0, 3.0], top_p=0.5) == [2]
    assert pick(F.top_p, [-1.0, 1.0, 3.0], top_p=0.9) == [2, 1]
    assert pick(F.top_p, [0.0, 0.0, 0.0], top_p=0.5) == [0, 1]  # 1/3 each
    assert shares([2.0, 2.0]) == [0.5, 0.5]
    assert pick(F.top_p, [None, None], top_p=0.5) == []


def test_top_k_top_p_keeps_what_both_keep():
    assert pick(F.top_k_top_p, [8.0, 7.0, 3.0, 2.0], top_k=2, top_p=0.9) == [0, 1]  # top_p: 3, top_k: 2
    assert pick(F.top_k_top_p, [8.0, 7.0, 3.0, 2.0], top_k=2, top_p=0.3) == [0]  # top_p: 1


def test_sigmoid_keeps_each_with_probability_sigmoid_of_its_centred_score():
    # draws of random.Random(7): .324 .151 .651 .072 .536 .366
    # sigmoid(score - 5):         .982 .5   .047 .731 .269 .881  -> keep 0, 1, 3, 5
    assert pick(F.sigmoid, [9.0, 5.0, 2.0, 6.0, 4.0, 7.0]) == [0, 5, 3, 1]
    # unscored candidates take no draw: candidate 2 gets the second (.151 > sigmoid(-3) = .047)
    assert pick(F.sigmoid, [9.0, None, 2.0]) == [0]
    # a wider scale flattens the curve: sigmoid((2 - 5) / 10) = .426 > .151
    assert pick(F.sigmoid, [9.0, None, 2.0], sigmoid_scale=10.0) == [0, 2]


def test_the_same_seed_selects_the_same_candidates():
    scores = [float(s) for s in range(10)]
    assert pick(F.sigmoid, scores, seed=11) == pick(F.sigmoid, scores, seed=11)
    assert pick(F.random, scores, seed=11) == pick(F.random, scores, seed=11)
