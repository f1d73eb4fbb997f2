"""OpenAI-compatible routes: /v1/chat/completions, /v1/completions, /v1/embeddings.

The chat request is vLLM's (as W&B Training serves it): the OpenAI fields plus
vLLM's sampling extras. Models allow extra fields, as vLLM's do, so a field
this module does not name still reaches a provider that understands it; a
provider that cannot honour a field sent with a non-default value answers 400
naming it (see ``unsupported_fields``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal, Protocol, Union, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

from ..errors import BadRequestError
from ._webmethod import webmethod


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow", protected_namespaces=())


# -- messages -------------------------------------------------------------------

MessageContent = Union[str, list[dict[str, Any]], None]


class OpenAISystemMessage(_Open):
    role: Literal["system"]
    content: MessageContent
    name: str | None = None


class OpenAIDeveloperMessage(_Open):
    role: Literal["developer"]
    content: MessageContent
    name: str | None = None


class OpenAIUserMessage(_Open):
    role: Literal["user"]
    content: MessageContent
    name: str | None = None


class OpenAIFunctionCall(_Open):
    name: str
    arguments: str


class OpenAIToolCall(_Open):
    id: str
    type: Literal["function"] = "function"
    function: OpenAIFunctionCall


class OpenAIAssistantMessage(_Open):
    role: Literal["assistant"]
    content: MessageContent = None
    name: str | None = None
    tool_calls: list[OpenAIToolCall] | None = None
    refusal: str | None = None
    reasoning_content: str | None = None


class OpenAIToolMessage(_Open):
    role: Literal["tool"]
    content: MessageContent
    tool_call_id: str


class OpenAIFunctionMessage(_Open):
    role: Literal["function"]
    content: str | None
    name: str


OpenAIMessage = Annotated[
    Union[OpenAISystemMessage, OpenAIDeveloperMessage, OpenAIUserMessage, OpenAIAssistantMessage,
          OpenAIToolMessage, OpenAIFunctionMessage],
    Field(discriminator="role"),
]


# -- request --------------------------------------------------------------------


class OpenAIFunctionDefinition(_Open):
    name: str
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class OpenAIChatTool(_Open):
    type: Literal["function"] = "function"
    function: OpenAIFunctionDefinition


class OpenAIStreamOptions(_Open):
    include_usage: bool | None = True
    continuous_usage_stats: bool | None = False


class OpenAIResponseFormat(_Open):
    type: Literal["text", "json_object", "json_schema", "structural_tag"]
    json_schema: dict[str, Any] | None = None


class _GenerationRequest(_Open):
    # True when the router filled in max_tokens with the model's default: a provider that counts the
    # prompt cuts it to what the context leaves instead of answering 400 (never settable by a client)
    _max_tokens_is_default: bool = PrivateAttr(False)


class OpenAIChatCompletionRequest(_GenerationRequest):
    """POST /v1/chat/completions: OpenAI's request plus vLLM's extras."""

    messages: list[OpenAIMessage] = Field(min_length=1)
    model: str
    frequency_penalty: float | None = 0
    logit_bias: dict[str, float] | None = None
    logprobs: bool | None = False
    top_logprobs: int | None = Field(0, ge=0, description="At most server.limits.max_top_logprobs (20)")
    max_tokens: int | None = Field(None, ge=1, description="Deprecated by OpenAI: max_completion_tokens")
    max_completion_tokens: int | None = Field(None, ge=1)
    n: int | None = Field(1, ge=1, description="At most server.limits.max_n (128)")
    presence_penalty: float | None = 0
    response_format: OpenAIResponseFormat | None = None
    seed: int | None = None
    stop: str | list[str] | None = Field(default_factory=list)
    stream: bool | None = False
    stream_options: OpenAIStreamOptions | None = None
    temperature: float | None = Field(None, ge=0)
    top_p: float | None = Field(None, gt=0, le=1)
    tools: list[OpenAIChatTool] | None = None
    tool_choice: Union[Literal["none", "auto", "required"], dict[str, Any], None] = None
    parallel_tool_calls: bool | None = None
    user: str | None = None
    # vLLM sampling extras
    top_k: int | None = None
    min_p: float | None = None
    repetition_penalty: float | None = None
    min_tokens: int | None = 0
    stop_token_ids: list[int] | None = None
    ignore_eos: bool | None = False
    use_beam_search: bool | None = False
    length_penalty: float | None = 1.0
    include_stop_str_in_output: bool | None = False
    skip_special_tokens: bool | None = True
    spaces_between_special_tokens: bool | None = True
    echo: bool | None = False
    add_generation_prompt: bool | None = True
    continue_final_message: bool | None = False
    chat_template: str | None = None
    chat_template_kwargs: dict[str, Any] | None = None
    guided_json: Any = None
    guided_regex: str | None = None
    guided_choice: list[str] | None = None
    guided_grammar: str | None = None

    @property
    def max_new_tokens(self) -> int | None:
        return self.max_completion_tokens or self.max_tokens


class OpenAICompletionRequest(_GenerationRequest):
    """POST /v1/completions (legacy text completion), with vLLM's extras."""

    model: str
    prompt: str | list[str] | list[int] | list[list[int]]
    max_tokens: int | None = Field(16, ge=1)
    temperature: float | None = Field(None, ge=0)
    top_p: float | None = Field(None, gt=0, le=1)
    n: int | None = Field(1, ge=1, description="At most server.limits.max_n (128)")
    stream: bool | None = False
    stream_options: OpenAIStreamOptions | None = None
    logprobs: int | None = Field(None, ge=0, description="At most server.limits.max_top_logprobs (20)")
    echo: bool | None = False
    stop: str | list[str] | None = Field(default_factory=list)
    presence_penalty: float | None = 0
    frequency_penalty: float | None = 0
    best_of: int | None = None
    logit_bias: dict[str, float] | None = None
    seed: int | None = None
    suffix: str | None = None
    user: str | None = None
    top_k: int | None = None
    min_p: float | None = None
    repetition_penalty: float | None = None
    response_format: OpenAIResponseFormat | None = None
    guided_json: Any = None
    guided_grammar: str | None = None


class OpenAIEmbeddingsRequest(_Open):
    model: str
    input: str | list[str] | list[int] | list[list[int]]
    encoding_format: Literal["float", "base64"] | None = "float"
    dimensions: int | None = Field(None, ge=1)
    user: str | None = None


# -- responses ------------------------------------------------------------------


class OpenAIUsage(_Open):
    prompt_tokens: int = 0
    completion_tokens: int | None = 0
    total_tokens: int = 0


class OpenAITopLogprob(_Open):
    token: str
    logprob: float
    bytes: list[int] | None = None


class OpenAITokenLogprob(OpenAITopLogprob):
    top_logprobs: list[OpenAITopLogprob] = Field(default_factory=list)


class OpenAIChoiceLogprobs(_Open):
    content: list[OpenAITokenLogprob] | None = None


class OpenAIChatMessage(_Open):
    role: Literal["assistant"] = "assistant"
    content: str | None = None
    tool_calls: list[OpenAIToolCall] = Field(default_factory=list)
    reasoning_content: str | None = None


class OpenAIChatChoice(_Open):
    index: int
    message: OpenAIChatMessage
    logprobs: OpenAIChoiceLogprobs | None = None
    finish_reason: str | None = "stop"


class OpenAIChatCompletion(_Open):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[OpenAIChatChoice]
    usage: OpenAIUsage
    system_fingerprint: str | None = None


class OpenAIToolCallDelta(_Open):
    index: int
    id: str | None = None
    type: Literal["function"] | None = None
    function: dict[str, Any] | None = None


class OpenAIChatDelta(_Open):
    role: Literal["assistant"] | None = None
    content: str | None = None
    tool_calls: list[OpenAIToolCallDelta] | None = None


class OpenAIChatChunkChoice(_Open):
    index: int
    delta: OpenAIChatDelta
    logprobs: OpenAIChoiceLogprobs | None = None
    finish_reason: str | None = None


class OpenAIChatCompletionChunk(_Open):
    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[OpenAIChatChunkChoice]
    usage: OpenAIUsage | None = None


class OpenAICompletionLogprobs(_Open):
    tokens: list[str] | None = None
    token_logprobs: list[float | None] | None = None
    top_logprobs: list[dict[str, float] | None] | None = None
    text_offset: list[int] | None = None


class OpenAICompletionChoice(_Open):
    index: int
    text: str
    logprobs: OpenAICompletionLogprobs | None = None
    finish_reason: str | None = None


class OpenAICompletion(_Open):
    id: str
    object: Literal["text_completion"] = "text_completion"
    created: int
    model: str
    choices: list[OpenAICompletionChoice]
    usage: OpenAIUsage | None = None


class OpenAIEmbedding(_Open):
    object: Literal["embedding"] = "embedding"
    index: int
    embedding: list[float] | str


class OpenAIEmbeddingsResponse(_Open):
    object: Literal["list"] = "list"
    data: list[OpenAIEmbedding]
    model: str
    usage: OpenAIUsage


@runtime_checkable
class OpenAICompat(Protocol):
    """Each method takes the whole request body, as OpenAI clients send it."""

    @webmethod(route="/v1/chat/completions", method="POST", body="request", sse_done=True,
               aliases=("/v1/openai/v1/chat/completions",))
    async def openai_chat_completion(
        self, request: OpenAIChatCompletionRequest
    ) -> OpenAIChatCompletion | AsyncIterator[OpenAIChatCompletionChunk]: ...

    @webmethod(route="/v1/completions", method="POST", body="request", sse_done=True,
               aliases=("/v1/openai/v1/completions",))
    async def openai_completion(
        self, request: OpenAICompletionRequest
    ) -> OpenAICompletion | AsyncIterator[OpenAICompletion]: ...

    @webmethod(route="/v1/embeddings", method="POST", body="request", sse_done=True,
               aliases=("/v1/openai/v1/embeddings",))
    async def openai_embeddings(self, request: OpenAIEmbeddingsRequest) -> OpenAIEmbeddingsResponse: ...


PROTOCOL = OpenAICompat


def check_supported_fields(request: Any, supported: frozenset[str] | None) -> None:
    """400 naming the first field the provider cannot honour that the request
    sets to something other than its default. ``None``: the provider takes all."""
    if supported is None:
        return
    fields = type(request).model_fields
    sent = request.model_fields_set
    # declared order, so `tools` is named before the `tool_choice` that needs it
    for name in [*(f for f in fields if f in sent), *sorted(request.model_extra or {})]:
        if name in supported:
            continue
        value = getattr(request, name)
        field = fields.get(name)
        if field is not None and value == field.get_default(call_default_factory=True):
            continue
        if value is None:
            continue
        raise BadRequestError(f"not supported by this model's provider (sent {value!r})", field=name)
