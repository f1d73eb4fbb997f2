"""inline::concurrent: batches run through the inference API, bounded, in order."""

import asyncio

import pytest

from providers.inline.batch_inference.concurrent import ConcurrentBatchConfig
from providers.inline.batch_inference.concurrent.batch import ConcurrentBatchInference
from stack.apis.inference import ChatCompletionResponse, CompletionMessage, CompletionResponse, StopReason, UserMessage
from stack.errors import BadRequestError, NotFoundError


class FakeInference:
    """Test double of the inference router: answers after a short sleep and
    records how many calls overlap."""

    def __init__(self, fail_on: str | None = None):
        self.running = 0
        self.peak = 0
        self.fail_on = fail_on
        self.calls = []

    async def _work(self, text):
        self.running += 1
        self.peak = max(self.peak, self.running)
        try:
            await asyncio.sleep(0.01 if text != "slow" else 0.05)
            if text == self.fail_on:
                raise NotFoundError("Model", "nope", ["m"])
            return text.upper()
        finally:
            self.running -= 1

    async def chat_completion(self, model_id, messages, stream=False, **kwargs):
        self.calls.append((model_id, kwargs))
        answer = await self._work(messages[-1].content)
        return ChatCompletionResponse(completion_message=CompletionMessage(content=answer, stop_reason=StopReason.end_of_turn))

    async def completion(self, model_id, content, stream=False, **kwargs):
        return CompletionResponse(content=await self._work(content), stop_reason=StopReason.out_of_tokens)


def batcher(inference, **config):
    return ConcurrentBatchInference(ConcurrentBatchConfig(**config), inference)


async def test_chat_batch_keeps_order_and_bounds_concurrency():
    inference = FakeInference()
    texts = ["slow", *[f"t{i}" for i in range(9)]]
    result = await batcher(inference, max_concurrency=3).batch_chat_completion(
        model="m", messages_batch=[[UserMessage(content=t)] for t in texts], sampling_params=None
    )
    assert [m.content for m in result.completion_message_batch] == [t.upper() for t in texts]
    assert inference.peak == 3
    assert all(model == "m" for model, _ in inference.calls)


async def test_completion_batch_returns_completion_messages():
    result = await batcher(FakeInference()).batch_completion(model="m", content_batch=["a", "b"])
    assert [(m.content, m.stop_reason) for m in result.completion_message_batch] == [
        ("A", StopReason.out_of_tokens), ("B", StopReason.out_of_tokens)
    ]


async def test_a_failing_item_fails_the_batch_with_its_own_error():
    with pytest.raises(NotFoundError, match="'nope' not found"):
        await batcher(FakeInference(fail_on="bad")).batch_completion(model="m", content_batch=["a", "bad", "c"])


@pytest.mark.parametrize("size, message", [(0, "empty"), (5, "at most 4")])
async def test_batch_size_is_checked(size, message):
    with pytest.raises(BadRequestError, match=f"content_batch: .*{message}"):
        await batcher(FakeInference(), max_batch_size=4).batch_completion(model="m", content_batch=["x"] * size)
