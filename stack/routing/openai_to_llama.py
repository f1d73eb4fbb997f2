"""OpenAI-compatible responses -> Llama Stack inference responses and streams."""

from __future__ import annotations

import json
import uuid
from typing import Any, AsyncIterator

from ..apis._content import TextDelta, ToolCall, ToolCallDelta, ToolCallParseStatus
from ..apis.inference import (
    ChatCompletionResponse,
    ChatCompletionResponseEvent,
    ChatCompletionResponseEventType,
    ChatCompletionResponseStreamChunk,
    CompletionMessage,
    CompletionResponse,
    CompletionResponseStreamChunk,
    StopReason,
    TokenLogProbs,
)
from ..apis.openai import (
    OpenAIChatCompletion,
    OpenAIChatCompletionChunk,
    OpenAIChoiceLogprobs,
    OpenAICompletion,
    OpenAICompletionLogprobs,
    OpenAIToolCall,
)

_STOP_REASONS = {
    "stop": StopReason.end_of_turn,
    "eos": StopReason.end_of_turn,
    "length": StopReason.out_of_tokens,
    "tool_calls": StopReason.end_of_message,
    "function_call": StopReason.end_of_message,
}


def stop_reason(finish_reason: str | None) -> StopReason:
    return _STOP_REASONS.get(finish_reason or "stop", StopReason.end_of_turn)


def tool_call(call: OpenAIToolCall) -> ToolCall | None:
    """The Llama Stack tool call, or None when the arguments are not a JSON object."""
    try:
        arguments = json.loads(call.function.arguments or "{}")
    except json.JSONDecodeError:
        return None
    if not isinstance(arguments, dict):
        return None
    return ToolCall(call_id=call.id or f"call_{uuid.uuid4().hex[:12]}", tool_name=call.function.name, arguments=arguments)


def chat_logprobs(logprobs: OpenAIChoiceLogprobs | None) -> list[TokenLogProbs] | None:
    if logprobs is None or not logprobs.content:
        return None
    return [
        TokenLogProbs(logprobs_by_token={t.token: t.logprob for t in (entry.top_logprobs or [entry])})
        for entry in logprobs.content
    ]


def completion_logprobs(logprobs: OpenAICompletionLogprobs | None) -> list[TokenLogProbs] | None:
    if logprobs is None or not logprobs.tokens:
        return None
    tops = logprobs.top_logprobs or [None] * len(logprobs.tokens)
    return [
        TokenLogProbs(logprobs_by_token=top or {token: lp if lp is not None else 0.0})
        for token, lp, top in zip(logprobs.tokens, logprobs.token_logprobs or [], tops)
    ]


def _call_stop_reason(finish: str | None, has_calls: bool) -> StopReason:
    """end_of_message when the model stopped to call tools, unless it ran out
    of tokens on the way (a cut-off call is not one to run)."""
    if has_calls and finish != "length":
        return StopReason.end_of_message
    return stop_reason(finish)


def chat_response(response: OpenAIChatCompletion) -> ChatCompletionResponse:
    choice = response.choices[0]
    calls = [c for c in (tool_call(tc) for tc in choice.message.tool_calls or []) if c is not None]
    return ChatCompletionResponse(
        completion_message=CompletionMessage(
            content=choice.message.content or "",
            stop_reason=_call_stop_reason(choice.finish_reason, bool(calls)),
            tool_calls=calls,
        ),
        logprobs=chat_logprobs(choice.logprobs),
    )


def completion_response(response: OpenAICompletion) -> CompletionResponse:
    choice = response.choices[0]
    return CompletionResponse(
        content=choice.text, stop_reason=stop_reason(choice.finish_reason), logprobs=completion_logprobs(choice.logprobs)
    )


def _event(event_type: ChatCompletionResponseEventType, delta, **kwargs: Any) -> ChatCompletionResponseStreamChunk:
    return ChatCompletionResponseStreamChunk(event=ChatCompletionResponseEvent(event_type=event_type, delta=delta, **kwargs))


async def chat_stream(chunks: AsyncIterator[OpenAIChatCompletionChunk]) -> AsyncIterator[ChatCompletionResponseStreamChunk]:
    """OpenAI chunks -> start, progress (text and tool-call deltas), complete.

    Tool-call arguments arrive in pieces; each non-empty piece is a progress
    event carrying only that piece (as llama-stack 0.1.0 sends them, so that
    clients join them), and the parsed call follows as ``succeeded`` (or
    ``failed`` with an empty string, as 0.1.0's own inference does) before the complete event.
    """
    try:
        async for event in _chat_events(chunks):
            yield event
    finally:  # the client left early: close the upstream stream now
        await _close(chunks)


async def _close(chunks: AsyncIterator) -> None:
    aclose = getattr(chunks, "aclose", None)
    if aclose is not None:
        await aclose()


async def _chat_events(chunks: AsyncIterator[OpenAIChatCompletionChunk]) -> AsyncIterator[ChatCompletionResponseStreamChunk]:
    yield _event(ChatCompletionResponseEventType.start, TextDelta(text=""))
    calls: dict[int, dict[str, str]] = {}
    finish: str | None = None
    async for chunk in chunks:
        for choice in chunk.choices[:1]:
            delta = choice.delta
            if delta.content:
                yield _event(ChatCompletionResponseEventType.progress, TextDelta(text=delta.content),
                             logprobs=chat_logprobs(choice.logprobs))
            for piece in delta.tool_calls or []:
                call = calls.setdefault(piece.index, {"id": "", "name": "", "arguments": ""})
                function = piece.function or {}
                call["id"] = piece.id or call["id"]
                call["name"] += function.get("name") or ""
                piece_text = function.get("arguments") or ""
                call["arguments"] += piece_text
                if piece_text:
                    yield _event(ChatCompletionResponseEventType.progress,
                                 ToolCallDelta(tool_call=piece_text, parse_status=ToolCallParseStatus.in_progress))
            finish = choice.finish_reason or finish
    for call in calls.values():
        parsed = tool_call(OpenAIToolCall(id=call["id"], function={"name": call["name"], "arguments": call["arguments"]}))
        if parsed is None:  # the text was already sent in pieces; sending it again would repeat it
            yield _event(ChatCompletionResponseEventType.progress,
                         ToolCallDelta(tool_call="", parse_status=ToolCallParseStatus.failed))
        else:
            yield _event(ChatCompletionResponseEventType.progress,
                         ToolCallDelta(tool_call=parsed, parse_status=ToolCallParseStatus.succeeded))
    reason = _call_stop_reason(finish, bool(calls))
    yield _event(ChatCompletionResponseEventType.complete, TextDelta(text=""), stop_reason=reason)


async def completion_stream(chunks: AsyncIterator[OpenAICompletion]) -> AsyncIterator[CompletionResponseStreamChunk]:
    try:
        async for chunk in chunks:
            for choice in chunk.choices[:1]:
                yield CompletionResponseStreamChunk(
                    delta=choice.text,
                    stop_reason=stop_reason(choice.finish_reason) if choice.finish_reason else None,
                    logprobs=completion_logprobs(choice.logprobs),
                )
    finally:
        await _close(chunks)
