"""Agent data types: config, sessions, turns, steps and the turn event stream."""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, Field

from ._content import URL, ContentDelta, InterleavedContent, InterleavedContentItem, ToolName
from .inference import (
    CompletionMessage,
    ResponseFormat,
    SamplingParams,
    ToolCall,
    ToolChoice,
    ToolPromptFormat,
    ToolResponseMessage,
    UserMessage,
)
from .safety import SafetyViolation
from .tool_groups import ToolDef


class AgentToolGroupWithArgs(BaseModel):
    """A tool group given with arguments for its tools (e.g. ``vector_db_ids``)."""

    name: str
    args: dict[str, Any]


# A tool group id ("builtin::websearch") or one with arguments.
AgentTool = Union[str, AgentToolGroupWithArgs]


class AgentConfig(BaseModel):
    # Lists and sampling default to empty/greedy (not null) so agents can iterate them directly.
    sampling_params: SamplingParams | None = Field(default_factory=SamplingParams)
    input_shields: list[str] | None = Field(default_factory=list)
    output_shields: list[str] | None = Field(default_factory=list)
    toolgroups: list[AgentTool] | None = Field(default_factory=list)
    client_tools: list[ToolDef] | None = Field(default_factory=list)
    tool_choice: ToolChoice | None = ToolChoice.auto
    tool_prompt_format: ToolPromptFormat | None = None
    max_infer_iters: int = 10
    model: str
    instructions: str
    enable_session_persistence: bool
    response_format: ResponseFormat | None = None


class Document(BaseModel):
    """A document attached to a turn: inline content or a URL, with its MIME type."""

    content: Union[str, InterleavedContentItem, list[InterleavedContentItem], URL]
    mime_type: str


# Turn.output_attachments has the same shape as the documents given to a turn.
Attachment = Document

# Messages a client may send into a turn.
TurnInputMessage = Annotated[Union[UserMessage, ToolResponseMessage], Field(discriminator="role")]


# -- steps ---------------------------------------------------------------------


class StepType(str, Enum):
    inference = "inference"
    tool_execution = "tool_execution"
    shield_call = "shield_call"
    memory_retrieval = "memory_retrieval"


class StepCommon(BaseModel):
    turn_id: str
    step_id: str
    started_at: datetime | None = None
    completed_at: datetime | None = None


class InferenceStep(StepCommon):
    step_type: Literal["inference"] = "inference"
    model_response: CompletionMessage


class ToolResponse(BaseModel):
    call_id: str
    tool_name: ToolName
    content: InterleavedContent


class ToolExecutionStep(StepCommon):
    step_type: Literal["tool_execution"] = "tool_execution"
    tool_calls: list[ToolCall]
    tool_responses: list[ToolResponse]


class ShieldCallStep(StepCommon):
    step_type: Literal["shield_call"] = "shield_call"
    violation: SafetyViolation | None = None


class MemoryRetrievalStep(StepCommon):
    step_type: Literal["memory_retrieval"] = "memory_retrieval"
    # A single string in the spec (the ids joined), not a list.
    vector_db_ids: str
    inserted_context: InterleavedContent


Step = Annotated[
    Union[InferenceStep, ToolExecutionStep, ShieldCallStep, MemoryRetrievalStep],
    Field(discriminator="step_type"),
]


# -- sessions and turns --------------------------------------------------------


class Turn(BaseModel):
    """One user request to an agent and everything it did to answer it."""

    turn_id: str
    session_id: str
    input_messages: list[TurnInputMessage]
    steps: list[Step]
    output_message: CompletionMessage
    # Required in the spec, but usually empty.
    output_attachments: list[Attachment] = Field(default_factory=list)
    started_at: datetime
    completed_at: datetime | None = None


class Session(BaseModel):
    """A conversation with an agent: its turns in order."""

    session_id: str
    session_name: str
    turns: list[Turn]
    started_at: datetime


class AgentCreateResponse(BaseModel):
    agent_id: str


class AgentSessionCreateResponse(BaseModel):
    session_id: str


class AgentStepResponse(BaseModel):
    step: Step


# -- turn event stream ---------------------------------------------------------


class AgentTurnResponseEventType(str, Enum):
    step_start = "step_start"
    step_complete = "step_complete"
    step_progress = "step_progress"
    turn_start = "turn_start"
    turn_complete = "turn_complete"


class AgentTurnResponseStepStartPayload(BaseModel):
    event_type: Literal["step_start"] = "step_start"
    step_type: StepType
    step_id: str
    metadata: dict[str, Any] | None = None


class AgentTurnResponseStepProgressPayload(BaseModel):
    event_type: Literal["step_progress"] = "step_progress"
    step_type: StepType
    step_id: str
    delta: ContentDelta


class AgentTurnResponseStepCompletePayload(BaseModel):
    event_type: Literal["step_complete"] = "step_complete"
    step_type: StepType
    step_id: str
    step_details: Step


class AgentTurnResponseTurnStartPayload(BaseModel):
    event_type: Literal["turn_start"] = "turn_start"
    turn_id: str


class AgentTurnResponseTurnCompletePayload(BaseModel):
    event_type: Literal["turn_complete"] = "turn_complete"
    turn: Turn


AgentTurnResponseEventPayload = Annotated[
    Union[
        AgentTurnResponseStepStartPayload,
        AgentTurnResponseStepProgressPayload,
        AgentTurnResponseStepCompletePayload,
        AgentTurnResponseTurnStartPayload,
        AgentTurnResponseTurnCompletePayload,
    ],
    Field(discriminator="event_type"),
]


class AgentTurnResponseEvent(BaseModel):
    payload: AgentTurnResponseEventPayload


class AgentTurnResponseStreamChunk(BaseModel):
    event: AgentTurnResponseEvent
