"""The conversation a new turn continues: the agent's instructions, then every
earlier turn of the session as the model saw it."""

from __future__ import annotations

from stack.apis.agents import InferenceStep, MemoryRetrievalStep, ShieldCallStep, ToolExecutionStep, Turn
from stack.apis.inference import CompletionMessage, Message, StopReason, SystemMessage, ToolResponseMessage, UserMessage
from stack.apis.safety import ViolationLevel

from providers.utils.inference.llama_to_openai import content_text

BLOCKED_MESSAGE = "I can't help with that request."


def blocked_reply(user_message: str | None) -> CompletionMessage:
    return CompletionMessage(content=user_message or BLOCKED_MESSAGE, stop_reason=StopReason.end_of_turn)


def with_context(messages: list, context: str) -> list:
    """``messages`` with ``context`` added to the last user message's (documents given inline);
    a context the client sent stays, first."""
    out = list(messages)
    for i in range(len(out) - 1, -1, -1):
        if isinstance(out[i], UserMessage):
            given = content_text(out[i].context)
            out[i] = out[i].model_copy(update={"context": f"{given}\n\n{context}" if given else context})
            break
    return out


def turn_messages(turn: Turn) -> list[Message]:
    """What the model saw and said in ``turn``, in order."""
    inputs: list = list(turn.input_messages)
    said: list[Message] = []
    for step in turn.steps:
        if isinstance(step, MemoryRetrievalStep) and isinstance(step.inserted_context, str):
            inputs = with_context(inputs, step.inserted_context)
        elif isinstance(step, InferenceStep):
            said.append(step.model_response)
        elif isinstance(step, ToolExecutionStep):
            said += [ToolResponseMessage(call_id=r.call_id, tool_name=r.tool_name, content=r.content) for r in step.tool_responses]
        elif isinstance(step, ShieldCallStep) and step.violation and step.violation.violation_level == ViolationLevel.error:
            said.append(blocked_reply(step.violation.user_message))
    return [*inputs, *said]


def conversation(instructions: str, turns: list[Turn]) -> list[Message]:
    messages: list[Message] = [SystemMessage(content=instructions)] if instructions else []
    for turn in turns:
        messages += turn_messages(turn)
    return messages
