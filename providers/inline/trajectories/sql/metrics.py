"""The metrics of one log call, named as W&B Training reports them (and as
``openpipe-art``'s ``ServerlessBackend`` reads them back)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

from stack.apis.trajectories import TrajectoryGroup


def _mean(values: Sequence[float]) -> float:
    return math.fsum(values) / len(values)


def _population_std(values: Sequence[float]) -> float:
    mean = _mean(values)
    return math.sqrt(_mean([(v - mean) ** 2 for v in values]))


def _collect(into: dict[str, list[float]], metrics: Iterable[tuple[str, float | int | bool]]) -> None:
    for name, value in metrics:
        into.setdefault(name, []).append(float(value))


def compute_metrics(split: str, groups: Sequence[TrajectoryGroup]) -> dict[str, float]:
    """``{split}/{name}`` for: ``reward`` (mean over trajectories), ``reward_std_dev``
    (population std within each group of more than one trajectory, averaged over those
    groups; 0 when none), each trajectory metric's mean over the trajectories that have it
    (``auto_metrics`` too; a trajectory's own ``metrics`` win on a clash; booleans as 0/1;
    ``duration`` is one of them), ``exception_rate`` (exceptions over trajectories plus
    exceptions), ``num_groups_submitted``, ``num_groups_trainable`` (groups whose rewards
    are not all equal), ``num_trajectories``, and ``group_metric_{name}`` (the mean of a
    group metric over the groups that have trajectories). A metric nothing measured is absent.
    """
    rewards: list[float] = []
    per_trajectory: dict[str, list[float]] = {}
    per_group: dict[str, list[float]] = {}
    std_devs: list[float] = []
    exceptions = trainable = 0
    for group in groups:
        group_rewards = [t.reward for t in group.trajectories]
        rewards += group_rewards
        exceptions += len(group.exceptions)
        if len(group_rewards) > 1:
            std_devs.append(_population_std(group_rewards))
            trainable += len(set(group_rewards)) > 1
        if group.trajectories:
            _collect(per_group, group.metrics.items())
        for trajectory in group.trajectories:
            _collect(per_trajectory, {**trajectory.auto_metrics, **trajectory.metrics}.items())

    metrics: dict[str, float] = {}
    if rewards:
        metrics["reward"] = _mean(rewards)
    metrics["reward_std_dev"] = _mean(std_devs) if std_devs else 0.0
    for name, values in per_trajectory.items():
        metrics.setdefault(name, _mean(values))  # a metric named "reward" does not replace the reward
    attempts = len(rewards) + exceptions
    metrics["exception_rate"] = exceptions / attempts if attempts else 0.0
    metrics["num_groups_submitted"] = float(len(groups))
    metrics["num_groups_trainable"] = float(trainable)
    metrics["num_trajectories"] = float(len(rewards))
    for name, values in per_group.items():
        metrics[f"group_metric_{name}"] = _mean(values)
    return {f"{split}/{name}": value for name, value in metrics.items()}
