"""Content shared by several API families: text and images, and streamed deltas."""

from __future__ import annotations

from enum import Enum
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, Field


class URL(BaseModel):
    uri: str


class _URLOrData(BaseModel):
    """An image given by ``url`` or inline as base64 ``data``."""

    url: URL | None = None
    data: str | None = Field(default=None, description="base64-encoded image bytes")


class TextContentItem(BaseModel):
    type: Literal["text"] = "text"
    text: str


class ImageContentItem(BaseModel):
    type: Literal["image"] = "image"
    image: _URLOrData


InterleavedContentItem = Annotated[
    Union[ImageContentItem, TextContentItem], Field(discriminator="type")
]

InterleavedContent = Union[str, InterleavedContentItem, list[InterleavedContentItem]]


class BuiltinTool(str, Enum):
    brave_search = "brave_search"
    wolfram_alpha = "wolfram_alpha"
    photogen = "photogen"
    code_interpreter = "code_interpreter"


_Scalar = Union[str, int, float, bool, None]
# The spec allows one level of nesting in tool arguments: scalars, lists or maps of scalars.
ToolArgumentValue = Union[_Scalar, list[_Scalar], dict[str, _Scalar]]

# Left-to-right so "brave_search" becomes BuiltinTool both from JSON and from Python dicts.
ToolName = Annotated[Union[BuiltinTool, str], Field(union_mode="left_to_right")]


class ToolCall(BaseModel):
    call_id: str
    tool_name: ToolName
    arguments: dict[str, ToolArgumentValue]


class ToolCallParseStatus(str, Enum):
    started = "started"
    in_progress = "in_progress"
    failed = "failed"
    succeeded = "succeeded"


class TextDelta(BaseModel):
    type: Literal["text"] = "text"
    text: str


class ImageDelta(BaseModel):
    type: Literal["image"] = "image"
    image: str = Field(description="base64-encoded image bytes")


class ToolCallDelta(BaseModel):
    type: Literal["tool_call"] = "tool_call"
    # A string while the call is still being parsed, a ToolCall once it parsed.
    tool_call: Annotated[Union[ToolCall, str], Field(union_mode="left_to_right")]
    parse_status: ToolCallParseStatus


ContentDelta = Annotated[Union[TextDelta, ImageDelta, ToolCallDelta], Field(discriminator="type")]

__all__ = [
    "URL",
    "BuiltinTool",
    "ContentDelta",
    "ImageContentItem",
    "ImageDelta",
    "InterleavedContent",
    "InterleavedContentItem",
    "TextContentItem",
    "TextDelta",
    "ToolCall",
    "ToolCallDelta",
    "ToolCallParseStatus",
]


def content_text(content: Any, separator: str = "") -> str:
    """The text of interleaved content (a string, content items or their dicts, or a list of them);
    images are left out. Items are joined with ``separator``: "" keeps streamed text as it was,
    "\n" keeps two items from running into one match (two halves of a number becoming a card
    number, say), " " keeps words apart."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, TextContentItem):
        return content.text
    if isinstance(content, dict):
        return str(content.get("text", "")) if content.get("type", "text") == "text" else ""
    if isinstance(content, list):
        return separator.join(t for t in (content_text(c, separator) for c in content) if t)
    return ""


def tool_name_text(name: Any) -> str:
    """The plain string name of a tool (``BuiltinTool.code_interpreter`` -> ``code_interpreter``)."""
    return name.value if isinstance(name, BuiltinTool) else str(name)
