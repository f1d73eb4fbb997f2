"""Trajectories (as logged, JSON) -> token sequences to train on: one sequence a choice.

A choice's tokens are the ones it was sampled as when the log says so (vLLM's ``token_ids``, or
logprob tokens written ``token_id:N``); otherwise its text is rendered with the chat template.
Its old log-probabilities come from its logprobs when they line up with those tokens; the
others are NaN (computed by the trainer before its first step).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

NAN = float("nan")


@dataclass
class Sequence:
    ids: list[int]
    mask: list[int]  # 1 on the tokens the model generated (trained on)
    old: list[float]  # their old log-probabilities (NaN where unknown); 0 elsewhere
    advantage: float = 0.0
    group: int = 0

    @property
    def trained_tokens(self) -> int:
        return sum(self.mask)


@dataclass
class Tokenizing:
    """How text becomes tokens for one model."""

    render: Callable[[list[dict[str, Any]], bool], str]  # (messages, add_generation_prompt) -> text
    encode: Callable[[str], list[int]]
    end_ids: set[int] = field(default_factory=set)
    end_of_turn: int | None = None
    max_len: int = 1024


def is_choice(item: dict[str, Any]) -> bool:
    return "finish_reason" in item and "message" in item


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts: their text
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


def _plain(message: dict[str, Any]) -> dict[str, str]:
    return {"role": message.get("role", "assistant"), "content": _text(message.get("content"))}


def _logged_tokens(choice: dict[str, Any]) -> tuple[list[int] | None, list[float] | None]:
    """The choice's token ids and their logprobs, as far as the log has them."""
    entries = ((choice.get("logprobs") or {}).get("content")) or []
    logprobs = [float(e["logprob"]) if e.get("logprob") is not None else NAN for e in entries] or None
    ids = choice.get("token_ids")
    if isinstance(ids, list) and ids and all(isinstance(t, int) for t in ids):
        return list(ids), logprobs
    if entries and all(str(e.get("token", "")).startswith("token_id:") for e in entries):
        try:
            return [int(e["token"].split(":", 1)[1]) for e in entries], logprobs
        except ValueError:
            pass
    return None, logprobs


def choice_sequence(tok: Tokenizing, before: list[dict[str, str]], choice: dict[str, Any]) -> Sequence:
    prompt = tok.encode(tok.render(before, True))
    message = _plain(choice["message"])
    ids, logprobs = _logged_tokens(choice)
    stopped = choice.get("finish_reason") == "stop" and tok.end_of_turn is not None
    if ids is None and logprobs is not None:
        own = tok.encode(message["content"])
        if len(own) == len(logprobs):  # text tokens that line up with the logged logprobs
            ids = own
    if ids is None:  # nothing to line up with: the template's rendering, logprobs computed
        ids, logprobs = tok.encode(tok.render(before + [message], False))[len(prompt):], None
    elif stopped and ids and ids[-1] not in tok.end_ids:
        ids = ids + [tok.end_of_turn]  # the turn ended: learn to stop too
    old = (logprobs or [])[: len(ids)]
    old = old + [NAN] * (len(ids) - len(old))
    keep = max(min(len(ids), tok.max_len - len(prompt)), 0)
    return Sequence(ids=prompt + ids[:keep], mask=[0] * len(prompt) + [1] * keep, old=[0.0] * len(prompt) + old[:keep])


def history_sequences(tok: Tokenizing, items: list[dict[str, Any]]) -> list[Sequence]:
    """One sequence for every choice of a conversation, its prompt being everything before it."""
    out, before = [], []
    for item in items:
        if is_choice(item):
            sequence = choice_sequence(tok, before, item)
            if sequence.trained_tokens:
                out.append(sequence)
            before.append(_plain(item["message"]))
        else:
            before.append(_plain(item))
    return out


def trajectory_sequences(tok: Tokenizing, trajectory: dict[str, Any]) -> list[Sequence]:
    sequences = history_sequences(tok, trajectory.get("messages_and_choices", []))
    for history in trajectory.get("additional_histories") or []:
        sequences += history_sequences(tok, history.get("messages_and_choices", []))
    return sequences


def dialog_sequences(tok: Tokenizing, messages: list[dict[str, Any]]) -> list[Sequence]:
    """SFT: every assistant message (or choice) of a dialog is a choice to learn."""
    items = [{"finish_reason": "stop", "message": m} if m.get("role") == "assistant" else m for m in messages]
    return history_sequences(tok, items)


def has_nan(values: list[float]) -> bool:
    return any(math.isnan(v) for v in values)
