"""Training examples from logs exported to datasets: the ``trajectories`` and ``prompt_logs`` data formats.

``trajectories`` rows are what ``POST /v1/preview/models/{id}/export`` writes (one a trajectory: its
group, reward and messages). SFT learns the best trajectory of each group; DPO prefers a group's best
over its worst at the first message where they differ, and skips groups whose rewards tie.

``prompt_logs`` rows are what ``POST /v5/prompts/{id}/export`` writes (one a log: its messages, output
and feedback). SFT learns the logs with positive feedback (``is_positive``).
"""

from __future__ import annotations

import json
import math
from typing import Any

from stack.errors import BadRequestError

from ._rows import ROLES

#: Humanloop's rating values that mark an answer good (v4 ``rating`` feedback: good/bad; v5 labels: Positive)
POSITIVE_RATINGS = frozenset({"good", "positive"})


def _parse(value: Any) -> Any:
    if isinstance(value, str):  # JSONL and CSV datasets may hold lists as JSON text
        try:
            return json.loads(value)
        except ValueError:
            return None
    return value


def plain_messages(value: Any) -> list[dict[str, str]] | None:
    """The messages as text-only system/user/assistant turns; None when one is not (tool calls,
    tool results, images): this trainer renders plain chat only."""
    value = _parse(value)
    if not isinstance(value, list) or not value:
        return None
    out = []
    for m in value:
        if not isinstance(m, dict):
            return None
        role = "system" if m.get("role") == "developer" else m.get("role")
        content = m.get("content")
        if isinstance(content, list):  # OpenAI content parts: text only
            if not all(isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("text"), str)
                       for p in content):
                return None
            content = "".join(p["text"] for p in content)
        if role not in ROLES or not isinstance(content, str) or m.get("tool_calls"):
            return None
        out.append({"role": role, "content": content})
    return out


def _no_column(row: dict[str, Any], column: str, what: str, field: str, i: int) -> BadRequestError:
    return BadRequestError(f"row {i} has no {what} column {column!r} (columns: {', '.join(row) or 'none'}); "
                           "are these rows of a trajectories export?", field=field)


# -- trajectories ----------------------------------------------------------------------------------


def _trajectory_groups(rows: list[dict[str, Any]], field: str) -> tuple[list[list[tuple[float, list | None]]], int]:
    """The rows' groups in order: each a list of (reward, plain messages or None); and the duplicates dropped."""
    groups: dict[Any, dict[Any, tuple[float, list | None]]] = {}
    duplicates = 0
    for i, row in enumerate(rows):
        reward = row.get("reward")
        if isinstance(reward, bool) or not isinstance(reward, (int, float)) or not math.isfinite(reward):
            raise _no_column(row, "reward", "numeric", field, i)
        if "chat_completion_input" not in row:
            raise _no_column(row, "chat_completion_input", "messages", field, i)
        if "group_id" in row:
            key = row["group_id"]
        elif "group_index" in row:  # exports without group ids: a group is one index of one logged step
            key = (row.get("model_id"), row.get("split"), row.get("step"), row["group_index"])
        else:
            raise _no_column(row, "group_id", "group", field, i)
        members = groups.setdefault(json.dumps(key, default=str), {})
        index = json.dumps(row.get("trajectory_index", len(members)), default=str)
        if index in members:  # the same trajectory exported twice
            duplicates += 1
            continue
        members[index] = (float(reward), plain_messages(row["chat_completion_input"]))
    return [list(members.values()) for members in groups.values()], duplicates


def sft_from_trajectories(rows: list[dict[str, Any]], field: str) -> list[dict[str, Any]]:
    """Each group's best trajectory (the first of the highest reward among those in plain chat)."""
    groups, _ = _trajectory_groups(rows, field)
    out = []
    for group in groups:
        usable = [(reward, m) for reward, m in group if m and any(x["role"] == "assistant" for x in m)]
        if usable:
            out.append({"messages": max(usable, key=lambda t: t[0])[1]})
    if not out:
        raise BadRequestError(f"none of its {len(groups)} groups has a trajectory in plain chat with an assistant "
                              "message (tool calls and images are not trained on)", field=field)
    return out


def _pair(best: list[dict[str, str]], worst: list[dict[str, str]]) -> dict[str, Any] | None:
    """Best over worst at the first message where they differ, when both say something there as the assistant."""
    for i, (b, w) in enumerate(zip(best, worst)):
        if b != w:
            if i == 0 or b["role"] != "assistant" or w["role"] != "assistant":
                return None
            return {"prompt": best[:i], "chosen": b["content"], "rejected": w["content"]}
    return None  # one is the other's beginning: no choice between them


def dpo_from_trajectories(rows: list[dict[str, Any]], field: str) -> list[dict[str, Any]]:
    """A pair a group: its best trajectory chosen, its worst rejected; groups whose rewards tie are skipped."""
    groups, _ = _trajectory_groups(rows, field)
    out, tied = [], 0
    for group in groups:
        usable = [(reward, m) for reward, m in group if m]
        if len(usable) < 2 or max(r for r, _ in usable) == min(r for r, _ in usable):
            tied += 1
            continue
        best = max(usable, key=lambda t: t[0])[1]
        worst = min(usable, key=lambda t: t[0])[1]
        if (pair := _pair(best, worst)) is not None:
            out.append(pair)
    if not out:
        raise BadRequestError(
            f"none of its {len(groups)} groups gives a preference pair: {tied} have fewer than two plain-chat "
            "trajectories or rewards that all tie, the others' best and worst do not differ in an assistant "
            "message", field=field)
    return out


# -- prompt logs -----------------------------------------------------------------------------------


def _dicts(items: list[Any]) -> list[dict[str, Any]]:
    return [item for item in items if isinstance(item, dict)]


def is_positive(feedback: list[dict[str, Any]]) -> bool:
    """Whether a log's feedback (oldest first) marks its answer good: its latest ``rating`` is ``good`` or
    ``positive`` (any case) or ``true``. A feedback with ``unset: true`` withdraws that type's earlier ones."""
    rating = None
    for fb in _dicts(feedback):
        if fb.get("type") == "rating":
            rating = None if fb.get("unset") else fb.get("value")
    if isinstance(rating, str):
        return rating.strip().lower() in POSITIVE_RATINGS
    return rating is True


def _correction(feedback: list[dict[str, Any]]) -> str | None:
    """The latest ``correction`` feedback's text: the answer the user says was right."""
    text = None
    for fb in _dicts(feedback):
        if fb.get("type") != "correction":
            continue
        if fb.get("unset"):
            text = None
        elif isinstance(fb.get("value"), str):
            text = fb["value"]
    return text


def sft_from_prompt_logs(rows: list[dict[str, Any]], field: str) -> list[dict[str, Any]]:
    """The logs with positive feedback, or with a correction (whose text replaces the output): their
    messages, then the answer as the assistant's turn."""
    out, rated = [], 0
    for i, row in enumerate(rows):
        for column in ("messages", "output", "feedback"):
            if column not in row:
                raise BadRequestError(f"row {i} has no column {column!r} (columns: {', '.join(row) or 'none'}); "
                                      "are these rows of a prompt-logs export?", field=field)
        feedback = _parse(row["feedback"])
        if not isinstance(feedback, list):
            raise BadRequestError(f"row {i}: 'feedback' is not a list of feedback", field=field)
        corrected, positive = _correction(feedback), is_positive(feedback)
        rated += positive or corrected is not None
        answer = corrected if corrected is not None else row["output"] if positive else None
        messages = plain_messages(row["messages"])
        if isinstance(answer, str) and answer.strip() and messages:
            out.append({"messages": [*messages, {"role": "assistant", "content": answer}]})
    if not out:
        why = (f"none of its {len(rows)} logs has positive feedback (a 'rating' of 'good' or 'positive') "
               "or a 'correction'") if not rated else (
               f"its {rated} logs with positive feedback or a correction have no plain-chat messages and output")
        raise BadRequestError(why, field=field)
    return out
