"""The text a shield reads from chat messages (shared by the safety providers)."""

from __future__ import annotations

from typing import Any

from stack.apis._content import TextContentItem


def content_text(content: Any) -> str:
    """The text of interleaved content; images are skipped.

    Text items are joined with a newline so that two items never run together
    into one match (two halves of a number becoming a card number, say).
    """
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    items = content if isinstance(content, list) else [content]
    return "\n".join(item.text for item in items if isinstance(item, TextContentItem))


def message_text(message: Any) -> str:
    """The text of one chat message's ``content``."""
    return content_text(message.content)
