"""OpenAI stream chunks -> Llama Stack stream events: tool calls arrive as pieces, as llama-stack 0.1.0 sends them."""

from __future__ import annotations

from stack.apis.openai import OpenAIChatCompletionChunk

from stack.routing.openai_to_llama import chat_stream


def _chunks(pieces: list[dict], finish: str = "tool_calls"):
    async def gen():
        for i, piece in enumerate(pieces):
            yield OpenAIChatCompletionChunk.model_validate({
                "id": "c", "created": 0, "model": "m",
                "choices": [{"index": 0, "delta": piece, "finish_reason": finish if i == len(pieces) - 1 else None}],
            })
    return gen()


def _call(index: int, arguments: str, name: str | None = None) -> dict:
    function = {"arguments": arguments, **({"name": name} if name else {})}
    return {"tool_calls": [{"index": index, **({"id": f"id{index}"} if name else {}), "function": function}]}


async def _tool_deltas(pieces: list[dict]) -> list:
    return [e.event.delta async for e in chat_stream(_chunks(pieces)) if e.event.delta.type == "tool_call"]


async def test_each_in_progress_delta_is_only_the_new_piece():
    deltas = await _tool_deltas([_call(0, "", "get_weather"), _call(0, '{"ci'), _call(0, 'ty": "Pa'), _call(0, 'ris"}')])
    *pieces, done = deltas
    assert [(d.parse_status.value, d.tool_call) for d in pieces] == [
        ("in_progress", '{"ci'), ("in_progress", 'ty": "Pa'), ("in_progress", 'ris"}')]
    assert done.parse_status.value == "succeeded"
    assert (done.tool_call.tool_name, done.tool_call.arguments) == ("get_weather", {"city": "Paris"})


async def test_two_calls_and_a_failed_one_never_repeat_text():
    deltas = await _tool_deltas([_call(0, '{"a": 1}', "f"), _call(1, "{not json", "g")])
    assert [(d.parse_status.value, d.tool_call if isinstance(d.tool_call, str) else d.tool_call.arguments) for d in deltas] == [
        ("in_progress", '{"a": 1}'), ("in_progress", "{not json"), ("succeeded", {"a": 1}), ("failed", "")]
