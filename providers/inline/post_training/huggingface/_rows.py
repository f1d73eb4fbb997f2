"""Dataset rows in the spec's shapes -> what the trainer reads: ``{"messages": [...]}`` for SFT,
``{"prompt": messages, "chosen": text, "rejected": text}`` for DPO. Each refusal names the row and column."""

from __future__ import annotations

import json
from typing import Any

from stack.errors import BadRequestError

ROLES = {"system", "user", "assistant"}


def messages_of(value: Any, field: str) -> list[dict[str, str]]:
    if isinstance(value, str):  # JSONL and CSV datasets may hold the list as JSON text
        try:
            value = json.loads(value)
        except ValueError:
            raise BadRequestError("is not a JSON list of messages", field=field) from None
    if not isinstance(value, list) or not value:
        raise BadRequestError("must be a non-empty list of messages", field=field)
    out = []
    for i, m in enumerate(value):
        if not isinstance(m, dict) or m.get("role") not in ROLES or not isinstance(m.get("content"), str):
            raise BadRequestError(f"message {i} needs a role ({', '.join(sorted(ROLES))}) and text content",
                                  field=field)
        out.append({"role": m["role"], "content": m["content"]})
    return out


def text_of(row: dict[str, Any], column: str, field: str, i: int) -> str:
    value = row.get(column)
    if not isinstance(value, str):
        raise BadRequestError(f"row {i} has no text column {column!r} (columns: {', '.join(row) or 'none'})", field=field)
    return value


def sft_row(row: dict[str, Any], fmt: str, field: str, i: int) -> dict[str, Any]:
    if fmt == "instruct":
        return {"messages": [{"role": "user", "content": text_of(row, "input_query", field, i)},
                             {"role": "assistant", "content": text_of(row, "expected_answer", field, i)}]}
    if "messages" not in row:
        raise BadRequestError(f"row {i} has no column 'messages' (columns: {', '.join(row) or 'none'})", field=field)
    messages = messages_of(row["messages"], f"{field} row {i} messages")
    if not any(m["role"] == "assistant" for m in messages):
        raise BadRequestError(f"row {i} has no assistant message to learn", field=field)
    return {"messages": messages}


def dpo_row(row: dict[str, Any], field: str, i: int) -> dict[str, Any]:
    prompt = row.get("prompt")
    if prompt is None:
        raise BadRequestError(f"row {i} has no column 'prompt' (columns: {', '.join(row) or 'none'})", field=field)
    if isinstance(prompt, str) and not prompt.lstrip().startswith("["):
        messages = [{"role": "user", "content": prompt}]
    else:
        messages = messages_of(prompt, f"{field} row {i} prompt")
    return {"prompt": messages, "chosen": text_of(row, "chosen", field, i), "rejected": text_of(row, "rejected", field, i)}
