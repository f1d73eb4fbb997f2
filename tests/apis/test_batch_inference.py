"""Batch inference responses."""

import pytest
from pydantic import ValidationError

from stack.apis.batch_inference import BatchChatCompletionResponse, BatchCompletionResponse
from stack.apis.inference import CompletionMessage


def test_batch_responses_hold_one_assistant_message_per_input():
    data = {
        "completion_message_batch": [
            {"role": "assistant", "content": "2", "stop_reason": "end_of_turn", "tool_calls": []},
            {
                "role": "assistant",
                "content": "",
                "stop_reason": "end_of_message",
                "tool_calls": [{"call_id": "c", "tool_name": "photogen", "arguments": {"prompt": "cat"}}],
            },
        ]
    }
    for cls in (BatchChatCompletionResponse, BatchCompletionResponse):
        resp = cls.model_validate(data)
        assert all(isinstance(m, CompletionMessage) for m in resp.completion_message_batch)
        assert resp.model_dump(mode="json") == data


def test_batch_response_rejects_non_assistant_messages():
    with pytest.raises(ValidationError):
        BatchCompletionResponse.model_validate({"completion_message_batch": [{"role": "user", "content": "x"}]})
