"""The text a shield reads from chat messages (shared by the safety providers)."""

from __future__ import annotations

from typing import Any

from stack.apis._content import content_text


def message_text(message: Any) -> str:
    """The text of one chat message's ``content``, items on lines of their own
    so that two items never run together into one match."""
    return content_text(message.content, "\n")
