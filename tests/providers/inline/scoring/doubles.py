"""Test doubles for the scoring providers, registered by a throwaway plugin
(``DoublesPlugin``); never part of a distribution.

- ``inline::scripted-judge`` (inference): answers each chat completion with
  the reply of the first ``replies`` key found in the prompt, after ``delay``
  seconds; records prompts and the most requests it had in flight at once.
- ``inline::in-memory-rows`` (datasetio): serves the rows its config holds per
  dataset, at most ``page_limit`` a page, and keeps appended rows.
"""

from __future__ import annotations

import asyncio
import base64
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict

import stack
from stack.apis._content import content_text
from stack.apis.datasetio import PaginatedRowsResult
from stack.apis.inference import ChatCompletionResponse, CompletionMessage, Inference
from stack.errors import BadRequestError
from stack.registry import ProviderSpec


class ScriptedJudgeConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    replies: dict[str, str] = {}
    default: str = "no idea"
    delay: float = 0.0


class _ChatOnly(Protocol):
    chat_completion = Inference.chat_completion


class ScriptedJudge:
    instances: list["ScriptedJudge"] = []

    def __init__(self, config: ScriptedJudgeConfig) -> None:
        self.config = config
        self.prompts: list[str] = []
        self.calls: list[dict] = []
        self.in_flight = self.most_in_flight = 0
        ScriptedJudge.instances.append(self)

    async def chat_completion(self, model_id, messages, **kwargs):
        prompt = content_text(messages[-1].content, "\n")
        self.prompts.append(prompt)
        self.calls.append({"model_id": model_id, **kwargs})
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            await asyncio.sleep(self.config.delay)
        finally:
            self.in_flight -= 1
        reply = next((r for key, r in self.config.replies.items() if key in prompt), self.config.default)
        if reply == "!fail":
            raise BadRequestError("the scripted judge refuses this one", field="messages")
        return ChatCompletionResponse(completion_message=CompletionMessage(content=reply, stop_reason="end_of_turn"))


class InMemoryRowsConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    rows: dict[str, list[dict[str, Any]]] = {}
    page_limit: int = 2


class InMemoryRows:
    instances: list["InMemoryRows"] = []

    def __init__(self, config: InMemoryRowsConfig) -> None:
        self.rows = {k: list(v) for k, v in config.rows.items()}
        self.page_limit = config.page_limit
        self.registered: dict[str, Any] = {}
        self.pages_served = 0
        InMemoryRows.instances.append(self)

    async def register_dataset(self, dataset):
        self.registered[dataset.identifier] = dataset
        if dataset.url.uri.startswith("data:text/csv;base64,"):  # a new, empty dataset: the header only
            header = base64.b64decode(dataset.url.uri.split(",", 1)[1]).decode()
            self.rows.setdefault(dataset.identifier, [])
            dataset.metadata["header"] = header.strip()
        return dataset

    async def get_rows_paginated(self, dataset_id, rows_in_page, page_token=None, filter_condition=None):
        rows = self.rows[dataset_id]
        start = int(page_token or 0)
        end = start + min(rows_in_page, self.page_limit)
        self.pages_served += 1
        return PaginatedRowsResult(rows=rows[start:end], total_count=len(rows),
                                   next_page_token=str(end) if end < len(rows) else None)

    async def append_rows(self, dataset_id, rows):
        self.rows[dataset_id].extend(rows)


class DoublesPlugin:
    @stack.hookimpl
    def register_providers(self, register):
        async def judge(config, context):
            return ScriptedJudge(config)

        async def rows(config, context):
            return InMemoryRows(config)

        register(ProviderSpec(api="inference", provider_type="inline::scripted-judge", config=ScriptedJudgeConfig,
                              factory=judge, serves=_ChatOnly))
        register(ProviderSpec(api="datasetio", provider_type="inline::in-memory-rows", config=InMemoryRowsConfig,
                              factory=rows))


def plugin_manager():
    """The built-in providers and the test doubles."""
    from stack.plugins import get_plugin_manager

    pm = get_plugin_manager(load_entry_points=False)
    pm.register(DoublesPlugin(), name="scoring-doubles")
    return pm
