"""A prompt's logs as dataset rows, with their feedback: what post-training's ``prompt_logs`` data format reads."""

from __future__ import annotations

import json
from typing import Any

from ._store import PromptLogStore

#: the dataset's columns (datasets API schema types)
EXPORT_SCHEMA = {
    "log_id": {"type": "string"}, "prompt_id": {"type": "string"}, "path": {"type": "string"},
    "version_id": {"type": "string"}, "created_at": {"type": "string"}, "messages": {"type": "string"},
    "output": {"type": "string"}, "feedback": {"type": "json"}, "inputs": {"type": "json"},
}


def _output(data: dict[str, Any]) -> str | None:
    """The answer a log recorded: ``output``, else the text of ``output_message``."""
    if isinstance(data.get("output"), str):
        return data["output"]
    message = data.get("output_message") or {}
    return message.get("content") if isinstance(message.get("content"), str) else None


def _messages(data: dict[str, Any]) -> list[dict[str, Any]]:
    """The log's input messages without the fields it left empty."""
    return [{k: v for k, v in m.items() if v is not None} for m in data.get("messages") or [] if isinstance(m, dict)]


async def export_rows(store: PromptLogStore, prompt: dict[str, Any]) -> list[dict[str, Any]]:
    """One row a log of ``prompt``, oldest first; its feedback oldest first (the latest of a type wins)."""
    rows = []
    for log in reversed(await store.logs_where(prompt_id=prompt["id"])):  # stored newest first
        data = log["data"]
        feedback = [{"type": f["data"].get("type"), "value": f["data"].get("value"), "unset": f["data"].get("unset"),
                     "user": f["data"].get("user"), "created_at": f["created_at"].isoformat()}
                    for f in await store.feedback_of(log["id"])]
        rows.append({
            "log_id": log["id"], "prompt_id": prompt["id"], "path": prompt["path"], "version_id": log["version_id"],
            "created_at": log["created_at"].isoformat(), "messages": json.dumps(_messages(data)),
            "output": _output(data), "feedback": feedback, "inputs": data.get("inputs") or {},
        })
    return rows
