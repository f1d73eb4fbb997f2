"""GRPO's advantages and loss (inline::huggingface ``_grpo``) against values computed by hand."""

from __future__ import annotations

import math

import pytest
import torch

from providers.inline.post_training.huggingface._grpo import (
    LossSettings,
    balance,
    group_advantages,
    policy_loss,
)

LN2 = math.log(2)


def test_advantages_are_rewards_minus_the_group_mean_over_its_std():
    # mean 5, population std sqrt((9 + 1 + 16) / 3) = 2.94392
    assert group_advantages([2.0, 4.0, 9.0], scale_rewards=False) == [-3.0, -1.0, 4.0]
    assert group_advantages([2.0, 4.0, 9.0]) == pytest.approx([-1.019049, -0.339683, 1.358732], abs=1e-6)
    assert group_advantages([1.0, 0.0, 0.0, 1.0]) == pytest.approx([1, -1, -1, 1], abs=1e-5)
    assert group_advantages([0.5, 0.5, 0.5]) == [0.0, 0.0, 0.0]  # nothing to learn from equal rewards
    assert group_advantages([3.0]) == [0.0] and group_advantages([]) == []


def test_advantage_balance_shrinks_one_side():
    a = torch.tensor([1.0, -1.0])
    assert balance(a, 0.5).tolist() == [1.0, -0.5]
    assert balance(a, -0.5).tolist() == [0.5, -1.0]
    assert balance(a, 0.0).tolist() == [1.0, -1.0]


def test_defaults_follow_art():
    assert LossSettings.from_config({}) == LossSettings(ppo=False, epsilon=1.0, epsilon_high=4.0)
    ppo = LossSettings.from_config({"ppo": True})
    assert (ppo.epsilon, ppo.epsilon_high) == (0.2, 0.2)
    given = LossSettings.from_config({"ppo": True, "epsilon": 0.1, "epsilon_high": 0.3, "importance_sampling_level": "sequence"})
    assert (given.epsilon, given.epsilon_high, given.importance_sampling_level) == (0.1, 0.3, "sequence")


def batch(advantage: float = 2.0):
    """One sequence: a prompt token (not trained), then two sampled tokens with probabilities 1/2 and 1/4
    under the new policy; the sampler gave the first 1/4 and the second is unknown (NaN)."""
    new = torch.tensor([[0.0, math.log(0.5), math.log(0.25)]], requires_grad=True)
    old = torch.tensor([[0.0, math.log(0.25), float("nan")]])
    return new, old, torch.full((1, 3), advantage), torch.tensor([[0.0, 1.0, 1.0]])


def test_reinforce_with_clipped_importance_weights():
    new, old, adv, mask = batch()
    loss, stats = policy_loss(new, old, adv, mask, LossSettings())
    # ratios 2 and 1 (NaN: sampled by this policy); loss -(r A log p) averaged: (-(2*2*-ln2) - (1*2*-2ln2)) / 2
    assert loss.item() == pytest.approx(4 * LN2)
    loss.backward()
    assert new.grad.tolist()[0] == pytest.approx([0.0, -2.0, -1.0])  # -(r A) / 2: the ratio carries no gradient
    assert stats == pytest.approx({"mean_ratio": 1.5, "clip_fraction": 0.0})


def test_ppo_clips_the_ratio_and_stops_its_gradient():
    new, old, adv, mask = batch()
    loss, stats = policy_loss(new, old, adv, mask, LossSettings.from_config({"ppo": True}))
    # token 1: min(2 * 2, 1.2 * 2) = 2.4; token 2: 1 * 2; loss -(2.4 + 2) / 2
    assert loss.item() == pytest.approx(-2.2)
    loss.backward()
    assert new.grad.tolist()[0] == pytest.approx([0.0, 0.0, -1.0])
    assert stats["clip_fraction"] == pytest.approx(0.5)
    # a negative advantage keeps the unclipped (worse) term: min(-2, -1.2) = -2, and its gradient
    new, old, adv, mask = batch(-1.0)
    loss, _ = policy_loss(new, old, adv, mask, LossSettings.from_config({"ppo": True}))
    assert loss.item() == pytest.approx((2.0 + 1.0) / 2)


def test_sequence_level_ratio_and_its_cap():
    new, old, adv, mask = batch()
    loss, stats = policy_loss(new, old, adv, mask, LossSettings(importance_sampling_level="sequence"))
    # one ratio for the sequence: exp(mean log-ratio) = exp(ln2 / 2) = sqrt 2, for both tokens
    assert loss.item() == pytest.approx(math.sqrt(2) * 3 * LN2)
    assert stats["mean_ratio"] == pytest.approx(math.sqrt(2))
    capped, _ = policy_loss(*batch(), LossSettings(max_ratio=1.5))
    assert capped.item() == pytest.approx((1.5 * 2 * LN2 + 1 * 2 * 2 * LN2) / 2)


def test_mask_prob_ratio_zeroes_ratios_outside_the_clip_range():
    new, old, adv, mask = batch()
    loss, _ = policy_loss(new, old, adv, mask, LossSettings(epsilon=0.2, epsilon_high=0.2, mask_prob_ratio=True))
    # ratio 2 is outside [0.8, 1.2]: its token counts 0; the other: -(1 * 2 * -2 ln2) / 2
    assert loss.item() == pytest.approx(2 * LN2)
