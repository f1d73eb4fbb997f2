"""OpenAI chat requests as Bedrock Converse requests, and Converse answers and stream events
as OpenAI completions and chunks (the Converse API's documented shapes)."""

from __future__ import annotations

import base64
import binascii
import json
import time
import uuid
from typing import Any

from stack.apis.openai import (
    OpenAIChatChoice,
    OpenAIChatChunkChoice,
    OpenAIChatCompletion,
    OpenAIChatCompletionChunk,
    OpenAIChatCompletionRequest,
    OpenAIChatDelta,
    OpenAIChatMessage,
    OpenAIFunctionCall,
    OpenAIToolCall,
    OpenAIUsage,
)
from stack.errors import BadRequestError, UpstreamError

#: Converse stop reasons -> OpenAI finish reasons
FINISH = {"end_turn": "stop", "stop_sequence": "stop", "max_tokens": "length", "tool_use": "tool_calls",
          "guardrail_intervened": "content_filter", "content_filtered": "content_filter"}
_IMAGE_FORMATS = {"image/png": "png", "image/jpeg": "jpeg", "image/jpg": "jpeg", "image/gif": "gif",
                  "image/webp": "webp"}

#: the chat request fields the Converse request carries (the router refuses others with a 400)
CHAT_PARAMS = frozenset({"model", "messages", "max_tokens", "max_completion_tokens", "temperature", "top_p",
                         "stop", "stream", "stream_options", "tools", "tool_choice"})


# -- request ----------------------------------------------------------------------------------


def _image(url: str, field: str) -> dict[str, Any]:
    head, _, data = url.partition(",")
    mime = head.removeprefix("data:").split(";")[0].lower()
    if not url.startswith("data:") or ";base64" not in head or mime not in _IMAGE_FORMATS:
        raise BadRequestError("Bedrock takes images inline, as base64 data: URLs of PNG, JPEG, GIF or WebP",
                              field=field)
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise BadRequestError("the image's data: URL is not valid base64", field=field) from None
    return {"image": {"format": _IMAGE_FORMATS[mime], "source": {"bytes": raw}}}


def _blocks(content: Any, field: str) -> list[dict[str, Any]]:
    """Converse content blocks for an OpenAI message's content (text and images)."""
    if content is None or content == "":
        return []
    if isinstance(content, str):
        return [{"text": content}]
    blocks = []
    for j, part in enumerate(content):
        kind = part.get("type")
        if kind == "text":
            if part.get("text"):
                blocks.append({"text": part["text"]})
        elif kind == "image_url":
            blocks.append(_image((part.get("image_url") or {}).get("url", ""), f"{field}[{j}].image_url.url"))
        else:
            raise BadRequestError(f"content part type {kind!r} is not supported by Bedrock", field=f"{field}[{j}]")
    return blocks


def _tool_input(arguments: str, field: str) -> Any:
    try:
        return json.loads(arguments or "{}")
    except ValueError:
        raise BadRequestError("tool call arguments must be JSON", field=field) from None


def _message(message: Any, i: int) -> tuple[str, list[dict[str, Any]]]:
    """(Converse role, content blocks) of one non-system message."""
    field = f"messages[{i}]"
    if message.role == "user":
        return "user", _blocks(message.content, f"{field}.content")
    if message.role == "assistant":
        blocks = _blocks(message.content, f"{field}.content")
        for j, call in enumerate(message.tool_calls or []):
            blocks.append({"toolUse": {"toolUseId": call.id, "name": call.function.name,
                                       "input": _tool_input(call.function.arguments, f"{field}.tool_calls[{j}]")}})
        return "assistant", blocks
    if message.role == "tool":  # Converse carries tool results in the user's turn
        text = _blocks(message.content, f"{field}.content") or [{"text": ""}]
        return "user", [{"toolResult": {"toolUseId": message.tool_call_id, "content": text}}]
    raise BadRequestError(f"role {message.role!r} is not supported by Bedrock; send tool messages", field=f"{field}.role")


def _tool_config(request: OpenAIChatCompletionRequest) -> dict[str, Any] | None:
    choice = request.tool_choice
    if not request.tools or choice == "none":
        return None
    tools = [{"toolSpec": {"name": t.function.name, "description": t.function.description or t.function.name,
                           "inputSchema": {"json": t.function.parameters or {"type": "object", "properties": {}}}}}
             for t in request.tools]
    config: dict[str, Any] = {"tools": tools}
    if choice == "required":
        config["toolChoice"] = {"any": {}}
    elif isinstance(choice, dict):
        name = (choice.get("function") or {}).get("name")
        if not name:
            raise BadRequestError("must name a function: {'type': 'function', 'function': {'name': ...}}",
                                  field="tool_choice")
        config["toolChoice"] = {"tool": {"name": name}}
    elif choice in (None, "auto"):
        config["toolChoice"] = {"auto": {}}
    return config


def converse_request(request: OpenAIChatCompletionRequest, max_tokens: int | None) -> dict[str, Any]:
    """The keyword arguments of boto3's ``converse`` / ``converse_stream`` for an OpenAI chat request."""
    system: list[dict[str, Any]] = []
    messages: list[dict[str, Any]] = []
    for i, message in enumerate(request.messages):
        if message.role in ("system", "developer"):
            system.extend(_blocks(message.content, f"messages[{i}].content"))
            continue
        role, blocks = _message(message, i)
        if not blocks:
            raise BadRequestError("message has no content", field=f"messages[{i}].content")
        if messages and messages[-1]["role"] == role:  # Converse wants the roles to alternate
            messages[-1]["content"].extend(blocks)
        else:
            messages.append({"role": role, "content": blocks})
    if not messages:
        raise BadRequestError("needs a user message besides the system messages", field="messages")
    kwargs: dict[str, Any] = {"modelId": request.model, "messages": messages}
    if system:
        kwargs["system"] = system
    inference: dict[str, Any] = {}
    if max_tokens is not None:
        inference["maxTokens"] = max_tokens
    if request.temperature is not None:
        inference["temperature"] = request.temperature
    if request.top_p is not None:
        inference["topP"] = request.top_p
    if request.stop:
        inference["stopSequences"] = [request.stop] if isinstance(request.stop, str) else list(request.stop)
    if inference:
        kwargs["inferenceConfig"] = inference
    tools = _tool_config(request)
    if tools is not None:
        kwargs["toolConfig"] = tools
    return kwargs


# -- response ---------------------------------------------------------------------------------


def usage(data: dict[str, Any] | None) -> OpenAIUsage:
    data = data or {}
    prompt, completion = int(data.get("inputTokens") or 0), int(data.get("outputTokens") or 0)
    return OpenAIUsage(prompt_tokens=prompt, completion_tokens=completion,
                       total_tokens=int(data.get("totalTokens") or prompt + completion))


def chat_response(data: dict[str, Any], model: str, where: str) -> OpenAIChatCompletion:
    """A Converse answer as an OpenAI chat completion."""
    message = (data.get("output") or {}).get("message")
    if not isinstance(message, dict):
        raise UpstreamError(f"Bedrock {where} answered without output.message: {str(data)[:200]}")
    texts, calls = [], []
    for block in message.get("content") or []:
        if "text" in block:
            texts.append(block["text"])
        elif "toolUse" in block:
            use = block["toolUse"]
            calls.append(OpenAIToolCall(id=use["toolUseId"], function=OpenAIFunctionCall(
                name=use["name"], arguments=json.dumps(use.get("input") or {}))))
    return OpenAIChatCompletion(
        id=f"chatcmpl-{uuid.uuid4().hex}", created=int(time.time()), model=model, usage=usage(data.get("usage")),
        choices=[OpenAIChatChoice(index=0, message=OpenAIChatMessage(content="".join(texts), tool_calls=calls),
                                  finish_reason=FINISH.get(data.get("stopReason"), "stop"))],
    )


class ChunkMaker:
    """ConverseStream events -> OpenAI chunks (None for events that carry nothing for the client)."""

    def __init__(self, model: str, include_usage: bool) -> None:
        self.id, self.created, self.model = f"chatcmpl-{uuid.uuid4().hex}", int(time.time()), model
        self.include_usage = include_usage
        self.finished = False
        self._tool_index: dict[int, int] = {}  # content block index -> tool call index

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> OpenAIChatCompletionChunk:
        return OpenAIChatCompletionChunk(id=self.id, created=self.created, model=self.model, choices=[
            OpenAIChatChunkChoice(index=0, delta=OpenAIChatDelta(**delta), finish_reason=finish)])

    def chunk(self, event: dict[str, Any]) -> OpenAIChatCompletionChunk | None:
        if "messageStart" in event:
            return self._chunk({"role": "assistant"})
        if "contentBlockStart" in event:
            start = event["contentBlockStart"]
            use = (start.get("start") or {}).get("toolUse")
            if use is None:
                return None
            index = self._tool_index.setdefault(start.get("contentBlockIndex", 0), len(self._tool_index))
            return self._chunk({"tool_calls": [{"index": index, "id": use["toolUseId"], "type": "function",
                                                "function": {"name": use["name"], "arguments": ""}}]})
        if "contentBlockDelta" in event:
            block = event["contentBlockDelta"]
            delta = block.get("delta") or {}
            if "text" in delta:
                return self._chunk({"content": delta["text"]})
            if "toolUse" in delta:
                index = self._tool_index.get(block.get("contentBlockIndex", 0), 0)
                return self._chunk({"tool_calls": [{"index": index,
                                                    "function": {"arguments": delta["toolUse"].get("input", "")}}]})
            return None
        if "messageStop" in event:
            self.finished = True
            return self._chunk({}, FINISH.get(event["messageStop"].get("stopReason"), "stop"))
        if "metadata" in event and self.include_usage:
            return OpenAIChatCompletionChunk(id=self.id, created=self.created, model=self.model, choices=[],
                                             usage=usage(event["metadata"].get("usage")))
        return None  # contentBlockStop, metadata without include_usage
