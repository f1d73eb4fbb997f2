"""Batch inference: many chat or text completions in one request."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from pydantic import BaseModel

from ._content import InterleavedContent
from ._webmethod import webmethod
from .inference import (
    CompletionMessage,
    LogProbConfig,
    Message,
    SamplingParams,
    ToolChoice,
    ToolDefinition,
    ToolPromptFormat,
)


class BatchCompletionResponse(BaseModel):
    completion_message_batch: list[CompletionMessage]


class BatchChatCompletionResponse(BaseModel):
    completion_message_batch: list[CompletionMessage]


@runtime_checkable
class BatchInference(Protocol):
    @webmethod(route="/v1/batch-inference/completion", method="POST")
    async def batch_completion(
        self,
        model: str,
        content_batch: list[InterleavedContent],
        sampling_params: SamplingParams | None = None,
        logprobs: LogProbConfig | None = None,
    ) -> BatchCompletionResponse: ...

    @webmethod(route="/v1/batch-inference/chat-completion", method="POST")
    async def batch_chat_completion(
        self,
        model: str,
        messages_batch: list[list[Message]],
        sampling_params: SamplingParams | None = None,
        tools: list[ToolDefinition] | None = None,
        tool_choice: ToolChoice | None = ToolChoice.auto,
        tool_prompt_format: ToolPromptFormat | None = None,
        logprobs: LogProbConfig | None = None,
    ) -> BatchChatCompletionResponse: ...


PROTOCOL = BatchInference
