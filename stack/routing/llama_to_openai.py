"""Llama Stack inference requests -> the OpenAI-compatible request models.

The OpenAI request is the one internal shape of a generation request: the
inference router converts a Llama Stack call here once, checks and forwards
it like a request of the OpenAI-compatible routes, and converts the answer
back (``openai_to_llama``). Providers see only the OpenAI shape.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ValidationError

from ..apis._content import BuiltinTool, ImageContentItem, InterleavedContent, TextContentItem, content_text, tool_name_text
from ..apis.inference import (
    CompletionMessage,
    GrammarResponseFormat,
    GreedySamplingStrategy,
    JsonSchemaResponseFormat,
    LogProbConfig,
    Message,
    ResponseFormat,
    SamplingParams,
    SystemMessage,
    ToolChoice,
    ToolDefinition,
    ToolResponseMessage,
    TopKSamplingStrategy,
    TopPSamplingStrategy,
    UserMessage,
)
from ..apis.openai import OpenAIChatCompletionRequest, OpenAICompletionRequest, OpenAIEmbeddingsRequest
from ..errors import BadRequestError, bad_request_from

# what the built-in tools take, for models that only know function tools
BUILTIN_TOOL_PARAMETERS = {
    BuiltinTool.brave_search: ("query", "The search query"),
    BuiltinTool.wolfram_alpha: ("query", "The query for Wolfram Alpha"),
    BuiltinTool.photogen: ("query", "What the image should show"),
    BuiltinTool.code_interpreter: ("code", "Python code to run"),
}


def _content_parts(content: InterleavedContent) -> str | list[dict[str, Any]]:
    if isinstance(content, str):
        return content
    items = content if isinstance(content, list) else [content]
    if all(isinstance(i, TextContentItem) for i in items):
        return "".join(i.text for i in items)
    parts: list[dict[str, Any]] = []
    for item in items:
        if isinstance(item, TextContentItem):
            parts.append({"type": "text", "text": item.text})
        elif isinstance(item, ImageContentItem):
            image = item.image
            if image.url is not None:
                url = image.url.uri
            elif image.data:
                url = f"data:image/png;base64,{image.data}"
            else:
                raise BadRequestError("an image needs a url or data", field="messages.content.image")
            parts.append({"type": "image_url", "image_url": {"url": url}})
    return parts


def message_to_openai(message: Message) -> dict[str, Any]:
    if isinstance(message, UserMessage):
        content = _content_parts(message.content)
        if message.context is not None:
            content = f"{content_text(message.content)}\n\n{content_text(message.context)}"
        return {"role": "user", "content": content}
    if isinstance(message, SystemMessage):
        return {"role": "system", "content": content_text(message.content)}
    if isinstance(message, ToolResponseMessage):
        return {"role": "tool", "tool_call_id": message.call_id, "content": content_text(message.content)}
    if isinstance(message, CompletionMessage):
        out: dict[str, Any] = {"role": "assistant", "content": content_text(message.content) or None}
        if message.tool_calls:
            out["tool_calls"] = [
                {
                    "id": call.call_id,
                    "type": "function",
                    "function": {"name": tool_name_text(call.tool_name), "arguments": json.dumps(call.arguments)},
                }
                for call in message.tool_calls
            ]
        return out
    raise BadRequestError(f"unknown message role {getattr(message, 'role', None)!r}", field="messages")


def tool_to_openai(tool: ToolDefinition) -> dict[str, Any]:
    name = tool_name_text(tool.tool_name)
    properties: dict[str, Any] = {}
    required: list[str] = []
    if isinstance(tool.tool_name, BuiltinTool) and not tool.parameters:
        param, description = BUILTIN_TOOL_PARAMETERS[tool.tool_name]
        properties[param] = {"type": "string", "description": description}
        required.append(param)
    for param_name, param in (tool.parameters or {}).items():
        schema: dict[str, Any] = {"type": _json_type(param.param_type)}
        if param.description:
            schema["description"] = param.description
        if param.default is not None:
            schema["default"] = param.default
        properties[param_name] = schema
        if param.required:
            required.append(param_name)
    function: dict[str, Any] = {
        "name": name,
        "parameters": {"type": "object", "properties": properties, "required": required},
    }
    if tool.description:
        function["description"] = tool.description
    return {"type": "function", "function": function}


_JSON_TYPES = {"str": "string", "int": "integer", "float": "number", "bool": "boolean", "list": "array", "dict": "object"}


def _json_type(param_type: str) -> str:
    return _JSON_TYPES.get(param_type, param_type)


def sampling_to_openai(params: SamplingParams | None) -> dict[str, Any]:
    params = params or SamplingParams()
    out: dict[str, Any] = {}
    strategy = params.strategy
    if isinstance(strategy, GreedySamplingStrategy):
        out["temperature"] = 0.0
    elif isinstance(strategy, TopPSamplingStrategy):
        if strategy.temperature is not None:
            out["temperature"] = strategy.temperature
        if strategy.top_p is not None:
            out["top_p"] = strategy.top_p
    elif isinstance(strategy, TopKSamplingStrategy):
        out["top_k"] = strategy.top_k
    if params.max_tokens:
        out["max_tokens"] = params.max_tokens
    # an explicit 1.0 is forwarded too: it turns off a provider's default penalty (llama-cpp's, for greedy)
    if params.repetition_penalty is not None and (
            params.repetition_penalty != 1.0 or "repetition_penalty" in params.model_fields_set):
        out["repetition_penalty"] = params.repetition_penalty
    return out


def response_format_to_openai(fmt: ResponseFormat | None) -> dict[str, Any]:
    if fmt is None:
        return {}
    if isinstance(fmt, JsonSchemaResponseFormat):
        return {"response_format": {"type": "json_schema", "json_schema": {"name": "response", "schema": fmt.json_schema}}}
    if isinstance(fmt, GrammarResponseFormat):
        return {"guided_grammar": grammar_text(fmt.bnf)}
    raise BadRequestError(f"unsupported response format {fmt!r}", field="response_format")


def grammar_text(bnf: dict[str, Any]) -> str:
    """A GBNF grammar from ``bnf``: ``{"gbnf": "<whole grammar>"}`` or rule -> body."""
    if "gbnf" in bnf:
        return str(bnf["gbnf"])
    if "root" not in bnf:
        raise BadRequestError("a grammar needs a 'root' rule (or the whole grammar under 'gbnf')", field="response_format.bnf")
    return "\n".join(f"{name} ::= {body}" for name, body in bnf.items())


def logprobs_to_openai(logprobs: LogProbConfig | None) -> dict[str, Any]:
    if logprobs is None:
        return {}
    return {"logprobs": True, "top_logprobs": max(1, logprobs.top_k or 1)}


def chat_request(
    model_id: str,
    messages: list[Message],
    sampling_params: SamplingParams | None = None,
    tools: list[ToolDefinition] | None = None,
    tool_choice: ToolChoice | None = None,
    response_format: ResponseFormat | None = None,
    stream: bool | None = False,
    logprobs: LogProbConfig | None = None,
    tool_prompt_format: Any = None,  # unused: OpenAI-native engines describe tools to the model themselves
) -> OpenAIChatCompletionRequest:
    """The OpenAI chat request for a Llama Stack chat_completion call."""
    request: dict[str, Any] = {
        "model": model_id,
        "messages": [message_to_openai(m) for m in messages],
        "stream": bool(stream),
        **sampling_to_openai(sampling_params),
        **response_format_to_openai(response_format),
        **logprobs_to_openai(logprobs),
    }
    if tools:
        request["tools"] = [tool_to_openai(t) for t in tools]
        request["tool_choice"] = (tool_choice or ToolChoice.auto).value
    if stream:
        request["stream_options"] = {"include_usage": True}
    return _validated(OpenAIChatCompletionRequest, request)


def completion_request(
    model_id: str,
    content: InterleavedContent,
    sampling_params: SamplingParams | None = None,
    response_format: ResponseFormat | None = None,
    stream: bool | None = False,
    logprobs: LogProbConfig | None = None,
) -> OpenAICompletionRequest:
    """The OpenAI completion request for a Llama Stack completion call."""
    request: dict[str, Any] = {
        "model": model_id,
        "prompt": content_text(content),
        "stream": bool(stream),
        **sampling_to_openai(sampling_params),
        **response_format_to_openai(response_format),
    }
    if logprobs is not None:
        request["logprobs"] = max(1, logprobs.top_k or 1)
    return _validated(OpenAICompletionRequest, request)


def embeddings_request(model_id: str, contents: list[InterleavedContent]) -> OpenAIEmbeddingsRequest:
    """The OpenAI embeddings request for a Llama Stack embeddings call (the text of each content)."""
    return _validated(OpenAIEmbeddingsRequest, {"model": model_id, "input": [content_text(c) for c in contents]})


def _validated(cls: type[BaseModel], body: dict[str, Any]) -> Any:
    """``body`` as ``cls``; what the Llama Stack request allows and ``cls`` does not
    (``messages: []``) is a 400 naming the field."""
    try:
        return cls.model_validate(body)
    except ValidationError as exc:
        raise bad_request_from(exc) from None
