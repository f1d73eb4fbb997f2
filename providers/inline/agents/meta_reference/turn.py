"""One turn of an agent: shields, inference, server-side tools, repeat.

``TurnRunner.run`` is an async generator of the spec's stream chunks, in
order: turn_start; per step step_start, step_progress (inference deltas),
step_complete; turn_complete carrying the Turn. The Turn is stored just
before turn_complete is sent, in one write.
"""

from __future__ import annotations

import uuid
from contextlib import aclosing
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, AsyncIterator

from stack.apis._content import TextDelta, ToolCall, ToolCallDelta, ToolCallParseStatus
from stack.apis.agents import (
    AgentTurnResponseEvent,
    AgentTurnResponseStepCompletePayload,
    AgentTurnResponseStepProgressPayload,
    AgentTurnResponseStepStartPayload,
    AgentTurnResponseStreamChunk,
    AgentTurnResponseTurnCompletePayload,
    AgentTurnResponseTurnStartPayload,
    InferenceStep,
    MemoryRetrievalStep,
    ShieldCallStep,
    StepType,
    ToolExecutionStep,
    ToolResponse,
    Turn,
)
from stack.apis.inference import CompletionMessage, Message, StopReason, ToolChoice, ToolResponseMessage
from stack.apis.safety import SafetyViolation, ViolationLevel
from stack.errors import BadRequestError, StackError

from stack.apis._content import content_text

from .history import MEMORY_QUERY_TOOL, blocked_reply, conversation, retrieved_context, with_context
from .store import AgentRecord, AgentStore
from .tools import Toolbox

_SEVERITY = {ViolationLevel.info: 0, ViolationLevel.warn: 1, ViolationLevel.error: 2}


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _chunk(payload: Any) -> AgentTurnResponseStreamChunk:
    return AgentTurnResponseStreamChunk(event=AgentTurnResponseEvent(payload=payload))


@dataclass
class AgentDeps:
    """The APIs a turn uses; all but inference may be absent from a stack."""

    inference: Any
    safety: Any | None = None
    tool_runtime: Any | None = None


class _Result:
    """Where a step's generator leaves what it produced (generators cannot return values)."""

    value: Any = None


class TurnRunner:
    def __init__(self, agent: AgentRecord, session_id: str, deps: AgentDeps, store: AgentStore, toolbox: Toolbox) -> None:
        self.agent = agent
        self.config = agent.agent_config
        self.session_id = session_id
        self.deps = deps
        self.store = store
        self.toolbox = toolbox
        self.turn_id = str(uuid.uuid4())
        self.steps: list = []

    async def run(
        self, input_messages: list, *, inline_context: str | None = None
    ) -> AsyncIterator[AgentTurnResponseStreamChunk]:
        started_at = _now()
        yield _chunk(AgentTurnResponseTurnStartPayload(turn_id=self.turn_id))
        output = None

        if self.config.input_shields:
            result = _Result()
            async for chunk in self._shield_step(self.config.input_shields, input_messages, result):
                yield chunk
            if result.value is not None:
                output = blocked_reply(result.value.user_message)

        if output is None:
            messages = conversation(self.config.instructions, await self.store.list_turns(self.session_id))
            turn_input = list(input_messages)
            if inline_context:
                async for chunk in self._memory_step(inline_context):
                    yield chunk
                turn_input = with_context(turn_input, inline_context)
            if self.toolbox.retrieval_db_ids:
                result = _Result()
                async for chunk in self._retrieval_step(input_messages, result):
                    yield chunk
                if result.value is not None:
                    turn_input = with_context(turn_input, result.value)
            messages += turn_input
            result = _Result()
            async for chunk in self._tool_loop(messages, result):
                yield chunk
            output = result.value

            if self.config.output_shields and not output.tool_calls:
                result = _Result()
                async for chunk in self._shield_step(self.config.output_shields, [output], result):
                    yield chunk
                if result.value is not None:
                    output = blocked_reply(result.value.user_message)

        turn = Turn(
            turn_id=self.turn_id,
            session_id=self.session_id,
            input_messages=input_messages,
            steps=self.steps,
            output_message=output,
            started_at=started_at,
            completed_at=_now(),
        )
        await self.store.put_turn(turn)
        yield _chunk(AgentTurnResponseTurnCompletePayload(turn=turn))

    # -- the loop ----------------------------------------------------------------

    async def _tool_loop(self, messages: list[Message], result: _Result) -> AsyncIterator[AgentTurnResponseStreamChunk]:
        # "required" forces the first call only: forced on every round the model could never answer.
        answering_client = bool(messages) and isinstance(messages[-1], ToolResponseMessage)
        tool_choice = ToolChoice.auto if answering_client else self.config.tool_choice
        for round_ in range(1, self.config.max_infer_iters + 1):
            step = _Result()
            async for chunk in self._inference_step(messages, tool_choice, step):
                yield chunk
            message: CompletionMessage = step.value
            messages.append(message)
            if not message.tool_calls:
                result.value = message
                return
            server_calls = [c for c in message.tool_calls if not self.toolbox.is_client(c.tool_name)]
            client_calls = [c for c in message.tool_calls if self.toolbox.is_client(c.tool_name)]
            if server_calls:
                responses = _Result()
                async for chunk in self._tool_step(server_calls, responses):
                    yield chunk
                messages += [ToolResponseMessage(call_id=r.call_id, tool_name=r.tool_name, content=r.content) for r in responses.value]
            if client_calls:
                # the client runs these and answers with ToolResponseMessages in its next turn
                result.value = message.model_copy(update={"tool_calls": client_calls})
                return
            tool_choice = ToolChoice.auto
        # Out of rounds right after running tools: the model never answered.
        # out_of_tokens tells clients (llama-stack-client's Agent) not to run the calls again.
        result.value = CompletionMessage(content=message.content, stop_reason=StopReason.out_of_tokens)

    # -- steps -------------------------------------------------------------------

    def _start(self, step_type: StepType, metadata: dict | None = None) -> tuple[str, datetime, AgentTurnResponseStreamChunk]:
        step_id = str(uuid.uuid4())
        chunk = _chunk(AgentTurnResponseStepStartPayload(step_type=step_type, step_id=step_id, metadata=metadata))
        return step_id, _now(), chunk

    def _complete(self, step) -> AgentTurnResponseStreamChunk:
        self.steps.append(step)
        return _chunk(AgentTurnResponseStepCompletePayload(step_type=step.step_type, step_id=step.step_id, step_details=step))

    async def _inference_step(self, messages: list[Message], tool_choice: ToolChoice | None, result: _Result) -> AsyncIterator[AgentTurnResponseStreamChunk]:
        step_id, started_at, chunk = self._start(StepType.inference)
        yield chunk
        request: dict[str, Any] = {
            "model_id": self.config.model,
            "messages": list(messages),  # a snapshot: the loop appends to its own list
            "sampling_params": self.config.sampling_params,
            "response_format": self.config.response_format,
            "stream": True,
        }
        if self.toolbox.definitions:
            request.update(tools=self.toolbox.definitions, tool_choice=tool_choice)
            if self.config.tool_prompt_format is not None:
                request["tool_prompt_format"] = self.config.tool_prompt_format
        text: list[str] = []
        calls: list[ToolCall] = []
        stop_reason = None
        async with aclosing(await self.deps.inference.chat_completion(**request)) as stream:
            async for item in stream:
                event = item.event
                delta = event.delta
                if isinstance(delta, TextDelta) and delta.text:
                    text.append(delta.text)
                    yield _chunk(AgentTurnResponseStepProgressPayload(step_type=StepType.inference, step_id=step_id, delta=delta))
                elif isinstance(delta, ToolCallDelta):
                    if delta.parse_status == ToolCallParseStatus.succeeded and isinstance(delta.tool_call, ToolCall):
                        calls.append(delta.tool_call)
                    yield _chunk(AgentTurnResponseStepProgressPayload(step_type=StepType.inference, step_id=step_id, delta=delta))
                if event.stop_reason is not None:
                    stop_reason = event.stop_reason
        message = CompletionMessage(content="".join(text), stop_reason=stop_reason or StopReason.end_of_turn, tool_calls=calls)
        result.value = message
        yield self._complete(InferenceStep(turn_id=self.turn_id, step_id=step_id, started_at=started_at, completed_at=_now(), model_response=message))

    async def _tool_step(self, calls: list[ToolCall], result: _Result) -> AsyncIterator[AgentTurnResponseStreamChunk]:
        step_id, started_at, chunk = self._start(StepType.tool_execution)
        yield chunk
        responses = [await self.toolbox.invoke(self.deps.tool_runtime, call) for call in calls]
        result.value = responses
        yield self._complete(ToolExecutionStep(
            turn_id=self.turn_id, step_id=step_id, started_at=started_at, completed_at=_now(),
            tool_calls=calls, tool_responses=responses,
        ))

    async def _retrieval_step(self, input_messages: list, result: _Result) -> AsyncIterator[AgentTurnResponseStreamChunk]:
        """builtin::rag, as llama-stack 0.1.0: search the agent's vector DBs with the turn's messages before
        inference, whatever the model would do, and record it as a ``query_from_memory`` tool execution.
        The context found is left in ``result``; a failed search is recorded and the turn goes on."""
        ids = self.toolbox.retrieval_db_ids
        step_id, started_at, chunk = self._start(StepType.tool_execution)
        yield chunk
        call = ToolCall(call_id=f"memory-{step_id}", tool_name=MEMORY_QUERY_TOOL, arguments={"vector_db_ids": ids})
        query = "\n".join(content_text(m.content) for m in input_messages)
        try:
            found = await self.deps.tool_runtime.rag_tool_query(
                content=query, vector_db_ids=ids, query_config=self.toolbox.retrieval_query_config)
            content = found.content
        except StackError as exc:
            content = f"error: {exc.message}"
        step = ToolExecutionStep(
            turn_id=self.turn_id, step_id=step_id, started_at=started_at, completed_at=_now(),
            tool_calls=[call], tool_responses=[ToolResponse(call_id=call.call_id, tool_name=MEMORY_QUERY_TOOL, content=content)],
        )
        result.value = retrieved_context(step)
        yield self._complete(step)

    async def _shield_step(self, shield_ids: list[str], messages: list, result: _Result) -> AsyncIterator[AgentTurnResponseStreamChunk]:
        """Run every shield; the most severe violation is recorded, and only an
        error-level one blocks (left in ``result``)."""
        if self.deps.safety is None:  # the agent was made on a stack that served safety
            which = "input_shields" if shield_ids is self.config.input_shields else "output_shields"
            raise BadRequestError("the agent names shields, but this stack serves no safety API",
                                  field=f"agent_config.{which}")
        step_id, started_at, chunk = self._start(StepType.shield_call)
        yield chunk
        worst: SafetyViolation | None = None
        for shield_id in shield_ids:
            response = await self.deps.safety.run_shield(shield_id=shield_id, messages=messages, params={})
            violation = response.violation
            if violation is not None and (worst is None or _SEVERITY[violation.violation_level] > _SEVERITY[worst.violation_level]):
                worst = violation
            if worst is not None and worst.violation_level == ViolationLevel.error:
                break
        result.value = worst if worst is not None and worst.violation_level == ViolationLevel.error else None
        yield self._complete(ShieldCallStep(turn_id=self.turn_id, step_id=step_id, started_at=started_at, completed_at=_now(), violation=worst))

    async def _memory_step(self, context: str) -> AsyncIterator[AgentTurnResponseStreamChunk]:
        """Documents given inline (no builtin::rag): their text goes with the user's message."""
        step_id, started_at, chunk = self._start(StepType.memory_retrieval)
        yield chunk
        yield self._complete(MemoryRetrievalStep(
            turn_id=self.turn_id, step_id=step_id, started_at=started_at, completed_at=_now(),
            vector_db_ids="", inserted_context=context,
        ))
