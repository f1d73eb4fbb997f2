"""The math of group-relative policy optimization (GRPO): advantages within a group, and the
clipped policy-gradient loss over tokens. Pure functions, unit-tested against hand-computed values.

The objective follows what art's trainers compute from ``experimental_config``: with ``ppo``,
PPO's ``-min(r A, clip(r) A)``; without it, the clipped-importance-weight REINFORCE loss
``-clip(r).detach() A log pi`` (CISPO), whose gradient keeps flowing through clipped tokens.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

#: added to the standard deviation, as GRPO implementations do, so a tiny spread cannot blow up
STD_EPSILON = 1e-6


def group_advantages(rewards: list[float], scale_rewards: bool = True) -> list[float]:
    """Each reward minus the group's mean, divided by the group's (population) standard deviation
    when ``scale_rewards``; all zero when the rewards are equal (nothing to learn from the group)."""
    if not rewards:
        return []
    mean = sum(rewards) / len(rewards)
    std = math.sqrt(sum((r - mean) ** 2 for r in rewards) / len(rewards))
    if std == 0:
        return [0.0] * len(rewards)
    return [(r - mean) / (std + STD_EPSILON) if scale_rewards else r - mean for r in rewards]


def balance(advantages: torch.Tensor, advantage_balance: float) -> torch.Tensor:
    """art's ``advantage_balance``: above 0 shrinks negative advantages, below 0 positive ones."""
    if advantage_balance > 0:
        return torch.where(advantages > 0, advantages, advantages * (1 - advantage_balance))
    if advantage_balance < 0:
        return torch.where(advantages < 0, advantages, advantages * (1 + advantage_balance))
    return advantages


@dataclass(frozen=True)
class LossSettings:
    """The loss's knobs, defaults resolved (art's: epsilon 0.2 with ppo, else 1.0 and 4.0 above)."""

    ppo: bool = False
    epsilon: float = 1.0
    epsilon_high: float = 4.0
    importance_sampling_level: str = "token"
    max_ratio: float | None = None
    mask_prob_ratio: bool = False
    kimi_k2_tau: float | None = None

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "LossSettings":
        ppo = bool(config.get("ppo"))
        epsilon = config.get("epsilon")
        epsilon = epsilon if epsilon is not None else (0.2 if ppo else 1.0)
        high = config.get("epsilon_high")
        high = high if high is not None else (epsilon if ppo else 4.0)
        return cls(ppo=ppo, epsilon=epsilon, epsilon_high=high,
                   importance_sampling_level=config.get("importance_sampling_level") or "token",
                   max_ratio=config.get("max_negative_advantage_importance_sampling_weight"),
                   mask_prob_ratio=bool(config.get("mask_prob_ratio")), kimi_k2_tau=config.get("kimi_k2_tau"))


def policy_loss(new: torch.Tensor, old: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor,
                settings: LossSettings) -> tuple[torch.Tensor, dict[str, float]]:
    """The mean loss over the masked tokens of a batch, and statistics of the step.

    ``new``: the policy's log-probabilities of the taken tokens (batch x tokens, with gradient);
    ``old``: those of the policy that sampled them (NaN: unknown, taken as ``new``, ratio 1);
    ``advantages``: each token's advantage; ``mask``: 1 on trained (assistant) tokens.
    """
    mask = mask.to(new.dtype)
    old = torch.where(torch.isnan(old), new.detach(), old)
    diff = new - old
    ratio = torch.exp(diff)
    level = settings.importance_sampling_level
    if level != "token":
        counts = mask.sum(-1, keepdim=True).clamp(min=1)
        sequence = torch.exp((diff * mask).sum(-1, keepdim=True) / counts).expand_as(ratio)
        if level == "sequence":
            ratio = sequence
        elif level == "average":
            ratio = (ratio + sequence) / 2
        elif level == "geometric_average":
            ratio = ratio.sqrt() * sequence.sqrt()
        else:
            raise ValueError(f"unknown importance_sampling_level {level!r}")
    if settings.max_ratio is not None:
        ratio = ratio.clamp(max=settings.max_ratio)
    low, high = 1 - settings.epsilon, 1 + settings.epsilon_high
    weight = mask
    if settings.mask_prob_ratio:  # tokens whose ratio left the clip range contribute nothing
        weight = mask * ((ratio > low) & (ratio < high)).to(mask.dtype).detach()
    if settings.kimi_k2_tau:
        advantages = advantages - settings.kimi_k2_tau * diff.detach()
    clipped = ratio.clamp(low, high)
    if settings.ppo:
        per_token = -torch.min(ratio * advantages, clipped * advantages)
    else:
        per_token = -(clipped.detach() * advantages * new)
    tokens = mask.sum()
    loss = (per_token * weight).sum() / tokens.clamp(min=1)
    with torch.no_grad():
        outside = ((ratio < low) | (ratio > high)).to(mask.dtype)
        stats = {"mean_ratio": float((ratio * mask).sum() / tokens.clamp(min=1)),
                 "clip_fraction": float((outside * mask).sum() / tokens.clamp(min=1))}
    return loss, stats


def token_logprobs(model: Any, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """log pi(token_t | tokens before t) of every token (position 0 gets 0: nothing predicts it)."""
    logits = model(input_ids=input_ids, attention_mask=attention_mask).logits[:, :-1].float()
    picked = torch.gather(logits.log_softmax(-1), 2, input_ids[:, 1:].unsqueeze(-1)).squeeze(-1)
    return torch.nn.functional.pad(picked, (1, 0), value=0.0)
