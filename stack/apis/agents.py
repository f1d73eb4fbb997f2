"""Agents: multi-turn sessions where a model calls tools, shields and memory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol, runtime_checkable

from ._agents_types import (
    AgentConfig,
    AgentCreateResponse,
    AgentSessionCreateResponse,
    AgentStepResponse,
    AgentTool,
    AgentToolGroupWithArgs,
    AgentTurnResponseEvent,
    AgentTurnResponseEventPayload,
    AgentTurnResponseEventType,
    AgentTurnResponseStepCompletePayload,
    AgentTurnResponseStepProgressPayload,
    AgentTurnResponseStepStartPayload,
    AgentTurnResponseStreamChunk,
    AgentTurnResponseTurnCompletePayload,
    AgentTurnResponseTurnStartPayload,
    Attachment,
    Document,
    InferenceStep,
    MemoryRetrievalStep,
    Session,
    ShieldCallStep,
    Step,
    StepCommon,
    StepType,
    ToolExecutionStep,
    ToolResponse,
    Turn,
    TurnInputMessage,
)
from ._webmethod import webmethod

__all__ = [
    "AgentConfig",
    "AgentCreateResponse",
    "AgentSessionCreateResponse",
    "AgentStepResponse",
    "AgentTool",
    "AgentToolGroupWithArgs",
    "AgentTurnResponseEvent",
    "AgentTurnResponseEventPayload",
    "AgentTurnResponseEventType",
    "AgentTurnResponseStepCompletePayload",
    "AgentTurnResponseStepProgressPayload",
    "AgentTurnResponseStepStartPayload",
    "AgentTurnResponseStreamChunk",
    "AgentTurnResponseTurnCompletePayload",
    "AgentTurnResponseTurnStartPayload",
    "Agents",
    "Attachment",
    "Document",
    "InferenceStep",
    "MemoryRetrievalStep",
    "Session",
    "ShieldCallStep",
    "Step",
    "StepCommon",
    "StepType",
    "ToolExecutionStep",
    "ToolResponse",
    "Turn",
    "TurnInputMessage",
]


@runtime_checkable
class Agents(Protocol):
    @webmethod(route="/v1/agents", method="POST")
    async def create_agent(self, agent_config: AgentConfig) -> AgentCreateResponse: ...

    @webmethod(route="/v1/agents/{agent_id}", method="DELETE")
    async def delete_agent(self, agent_id: str) -> None: ...

    @webmethod(route="/v1/agents/{agent_id}/session", method="POST")
    async def create_agent_session(
        self, agent_id: str, session_name: str
    ) -> AgentSessionCreateResponse: ...

    @webmethod(route="/v1/agents/{agent_id}/session/{session_id}", method="GET")
    async def get_agents_session(
        self, session_id: str, agent_id: str, turn_ids: list[str] | None = None
    ) -> Session: ...

    @webmethod(route="/v1/agents/{agent_id}/session/{session_id}", method="DELETE")
    async def delete_agents_session(self, session_id: str, agent_id: str) -> None: ...

    @webmethod(
        route="/v1/agents/{agent_id}/session/{session_id}/turn",
        method="POST",
        request_name="CreateAgentTurnRequest",
    )
    async def create_agent_turn(
        self,
        agent_id: str,
        session_id: str,
        messages: list[TurnInputMessage],
        stream: bool | None = False,
        documents: list[Document] | None = None,
        toolgroups: list[AgentTool] | None = None,
    ) -> Turn | AsyncIterator[AgentTurnResponseStreamChunk]: ...

    @webmethod(route="/v1/agents/{agent_id}/session/{session_id}/turn/{turn_id}", method="GET")
    async def get_agents_turn(self, agent_id: str, session_id: str, turn_id: str) -> Turn: ...

    @webmethod(
        route="/v1/agents/{agent_id}/session/{session_id}/turn/{turn_id}/step/{step_id}",
        method="GET",
    )
    async def get_agents_step(
        self, agent_id: str, session_id: str, turn_id: str, step_id: str
    ) -> AgentStepResponse: ...


PROTOCOL = Agents
