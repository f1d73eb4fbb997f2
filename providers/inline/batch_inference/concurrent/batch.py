"""Batch inference through the inference router, a bounded number at a time."""

from __future__ import annotations

import asyncio
from typing import Any, Awaitable, Callable

from stack.apis.batch_inference import BatchChatCompletionResponse, BatchCompletionResponse
from stack.apis.inference import CompletionMessage, StopReason
from stack.errors import BadRequestError


class ConcurrentBatchInference:
    def __init__(self, config, inference) -> None:
        self.config = config
        self.inference = inference

    def _check_size(self, field: str, batch: list) -> None:
        if not batch:
            raise BadRequestError("the batch is empty", field=field)
        if len(batch) > self.config.max_batch_size:
            raise BadRequestError(f"{len(batch)} items; at most {self.config.max_batch_size}", field=field)

    async def _run_all(self, calls: list[Callable[[], Awaitable[Any]]]) -> list[Any]:
        """Run every call, at most max_concurrency at once, results in order.
        The first failure cancels the rest and is raised."""
        gate = asyncio.Semaphore(self.config.max_concurrency)

        async def bounded(call):
            async with gate:
                return await call()

        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(bounded(call)) for call in calls]
        return [task.result() for task in tasks]

    async def batch_chat_completion(self, model: str, messages_batch: list, **kwargs: Any) -> BatchChatCompletionResponse:
        self._check_size("messages_batch", messages_batch)
        kwargs.pop("stream", None)

        def call(messages):
            return lambda: self.inference.chat_completion(model_id=model, messages=messages, stream=False, **kwargs)

        try:
            responses = await self._run_all([call(m) for m in messages_batch])
        except* Exception as group:  # report the first failure as itself
            raise group.exceptions[0] from None
        return BatchChatCompletionResponse(completion_message_batch=[r.completion_message for r in responses])

    async def batch_completion(self, model: str, content_batch: list, **kwargs: Any) -> BatchCompletionResponse:
        self._check_size("content_batch", content_batch)

        def call(content):
            return lambda: self.inference.completion(model_id=model, content=content, stream=False, **kwargs)

        try:
            responses = await self._run_all([call(c) for c in content_batch])
        except* Exception as group:
            raise group.exceptions[0] from None
        return BatchCompletionResponse(
            completion_message_batch=[
                CompletionMessage(content=r.content, stop_reason=r.stop_reason or StopReason.end_of_turn) for r in responses
            ]
        )
