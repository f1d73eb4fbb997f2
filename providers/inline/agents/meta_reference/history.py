"""The conversation a new turn continues: the agent's instructions, then every
earlier turn of the session as the model saw it."""

from __future__ import annotations

from stack.apis.agents import InferenceStep, MemoryRetrievalStep, ShieldCallStep, ToolExecutionStep, Turn
from stack.apis.inference import CompletionMessage, Message, StopReason, SystemMessage, ToolResponseMessage, UserMessage
from stack.apis.safety import ViolationLevel

from stack.apis._content import content_text

BLOCKED_MESSAGE = "I can't help with that request."
# The tool execution step of builtin::rag's retrieval before inference (llama-stack 0.1.0's name).
MEMORY_QUERY_TOOL = "query_from_memory"


def is_retrieval(step) -> bool:
    return isinstance(step, ToolExecutionStep) and [c.tool_name for c in step.tool_calls] == [MEMORY_QUERY_TOOL]


def retrieved_context(step: ToolExecutionStep) -> str | None:
    """The context a retrieval step put into the turn's last user message; None when the search failed."""
    text = content_text(step.tool_responses[0].content) if step.tool_responses else ""
    return None if not text or text.startswith("error: ") else text


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
        elif is_retrieval(step):
            if (context := retrieved_context(step)) is not None:
                inputs = with_context(inputs, context)
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
