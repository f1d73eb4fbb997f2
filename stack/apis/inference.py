"""Inference: chat completion, text completion and embeddings from registered models."""

from __future__ import annotations

from collections.abc import AsyncIterator
from enum import Enum
from typing import Annotated, Any, Literal, Protocol, Union, runtime_checkable

from pydantic import BaseModel, Field, PrivateAttr

from ._content import (
    BuiltinTool,
    ContentDelta,
    InterleavedContent,
    ToolCall,
    ToolCallDelta,
    ToolCallParseStatus,
    ToolName,
)
from ._webmethod import webmethod

__all__ = [
    "BuiltinTool",
    "ChatCompletionResponse",
    "ChatCompletionResponseEvent",
    "ChatCompletionResponseEventType",
    "ChatCompletionResponseStreamChunk",
    "CompletionMessage",
    "CompletionResponse",
    "CompletionResponseStreamChunk",
    "EmbeddingsResponse",
    "GrammarResponseFormat",
    "GreedySamplingStrategy",
    "Inference",
    "JsonSchemaResponseFormat",
    "LogProbConfig",
    "Message",
    "ResponseFormat",
    "ResponseFormatType",
    "SamplingParams",
    "SamplingStrategy",
    "StopReason",
    "SystemMessage",
    "TokenLogProbs",
    "ToolCall",
    "ToolCallDelta",
    "ToolCallParseStatus",
    "ToolChoice",
    "ToolDefinition",
    "ToolParamDefinition",
    "ToolPromptFormat",
    "ToolResponseMessage",
    "TopKSamplingStrategy",
    "TopPSamplingStrategy",
    "UserMessage",
]


class StopReason(str, Enum):
    end_of_turn = "end_of_turn"
    end_of_message = "end_of_message"
    out_of_tokens = "out_of_tokens"


class ToolChoice(str, Enum):
    auto = "auto"
    required = "required"


class ToolPromptFormat(str, Enum):
    """How custom tools are described to the model and how it calls them."""

    json = "json"
    function_tag = "function_tag"
    python_list = "python_list"


# -- messages ------------------------------------------------------------------


class UserMessage(BaseModel):
    role: Literal["user"] = "user"
    content: InterleavedContent
    # Retrieved (RAG) context the stack adds to the user's content.
    context: InterleavedContent | None = None


class SystemMessage(BaseModel):
    role: Literal["system"] = "system"
    content: InterleavedContent


class ToolResponseMessage(BaseModel):
    role: Literal["tool"] = "tool"
    call_id: str
    tool_name: ToolName
    content: InterleavedContent


class CompletionMessage(BaseModel):
    """The assistant's message: its content and the tools it asked to call."""

    role: Literal["assistant"] = "assistant"
    content: InterleavedContent
    stop_reason: StopReason
    # The spec lists it as required; clients replaying history often omit an empty list.
    tool_calls: list[ToolCall] = Field(default_factory=list)


Message = Annotated[
    Union[UserMessage, SystemMessage, ToolResponseMessage, CompletionMessage],
    Field(discriminator="role"),
]


# -- sampling ------------------------------------------------------------------


class GreedySamplingStrategy(BaseModel):
    type: Literal["greedy"] = "greedy"


class TopPSamplingStrategy(BaseModel):
    type: Literal["top_p"] = "top_p"
    temperature: float | None = None
    top_p: float | None = 0.95


class TopKSamplingStrategy(BaseModel):
    type: Literal["top_k"] = "top_k"
    top_k: int


SamplingStrategy = Annotated[
    Union[GreedySamplingStrategy, TopPSamplingStrategy, TopKSamplingStrategy],
    Field(discriminator="type"),
]


class SamplingParams(BaseModel):
    strategy: SamplingStrategy = Field(default_factory=GreedySamplingStrategy)
    max_tokens: int | None = Field(default=0, description="0: the model's default_max_tokens, cut to what fits")
    repetition_penalty: float | None = 1.0
    # as on the OpenAI requests: max_tokens is the router's default, not the client's
    _max_tokens_is_default: bool = PrivateAttr(False)


# -- tools ---------------------------------------------------------------------


class ToolParamDefinition(BaseModel):
    param_type: str
    description: str | None = None
    required: bool | None = True
    default: Any = None


class ToolDefinition(BaseModel):
    """A tool the model may call: a built-in one or a custom function."""

    tool_name: ToolName
    description: str | None = None
    parameters: dict[str, ToolParamDefinition] | None = None


# -- structured output ---------------------------------------------------------


class ResponseFormatType(str, Enum):
    json_schema = "json_schema"
    grammar = "grammar"


class JsonSchemaResponseFormat(BaseModel):
    type: Literal["json_schema"] = "json_schema"
    json_schema: dict[str, Any]


class GrammarResponseFormat(BaseModel):
    type: Literal["grammar"] = "grammar"
    bnf: dict[str, Any]


ResponseFormat = Annotated[
    Union[JsonSchemaResponseFormat, GrammarResponseFormat], Field(discriminator="type")
]


class LogProbConfig(BaseModel):
    top_k: int | None = Field(default=0, description="How many tokens per position to return")


# -- responses -----------------------------------------------------------------


class TokenLogProbs(BaseModel):
    logprobs_by_token: dict[str, float]


class ChatCompletionResponse(BaseModel):
    completion_message: CompletionMessage
    logprobs: list[TokenLogProbs] | None = None


class ChatCompletionResponseEventType(str, Enum):
    start = "start"
    complete = "complete"
    progress = "progress"


class ChatCompletionResponseEvent(BaseModel):
    event_type: ChatCompletionResponseEventType
    delta: ContentDelta
    logprobs: list[TokenLogProbs] | None = None
    stop_reason: StopReason | None = None


class ChatCompletionResponseStreamChunk(BaseModel):
    event: ChatCompletionResponseEvent


class CompletionResponse(BaseModel):
    content: str
    stop_reason: StopReason
    logprobs: list[TokenLogProbs] | None = None


class CompletionResponseStreamChunk(BaseModel):
    delta: str
    stop_reason: StopReason | None = None
    logprobs: list[TokenLogProbs] | None = None


class EmbeddingsResponse(BaseModel):
    embeddings: list[list[float]]


@runtime_checkable
class Inference(Protocol):
    @webmethod(route="/v1/inference/completion", method="POST")
    async def completion(
        self,
        model_id: str,
        content: InterleavedContent,
        sampling_params: SamplingParams | None = None,
        response_format: ResponseFormat | None = None,
        stream: bool | None = False,
        logprobs: LogProbConfig | None = None,
    ) -> CompletionResponse | AsyncIterator[CompletionResponseStreamChunk]: ...

    @webmethod(route="/v1/inference/chat-completion", method="POST")
    async def chat_completion(
        self,
        model_id: str,
        messages: list[Message],
        sampling_params: SamplingParams | None = None,
        tools: list[ToolDefinition] | None = None,
        tool_choice: ToolChoice | None = ToolChoice.auto,
        tool_prompt_format: ToolPromptFormat | None = None,
        response_format: ResponseFormat | None = None,
        stream: bool | None = False,
        logprobs: LogProbConfig | None = None,
    ) -> ChatCompletionResponse | AsyncIterator[ChatCompletionResponseStreamChunk]: ...

    @webmethod(route="/v1/inference/embeddings", method="POST")
    async def embeddings(
        self,
        model_id: str,
        contents: list[InterleavedContent],
    ) -> EmbeddingsResponse: ...


PROTOCOL = Inference
