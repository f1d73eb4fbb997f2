"""The request's ``dialogs`` (one flat list of messages, as the spec has it) cut into
the dialogs that each need an answer.

A user message that no assistant message answers closes a dialog: the
messages since the previous dialog closed, up to and including it. So
``[user A, user B]`` is two one-message dialogs, and ``[system, user,
assistant, user]`` is one multi-turn dialog answered after its last user
message. System messages at the head of the list are shared: every dialog
without a system message of its own starts with them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from stack.apis._content import content_text
from stack.errors import BadRequestError


@dataclass(frozen=True)
class Dialog:
    """One dialog to answer: its messages (ending with a user message) and where it came from."""

    messages: list[Any]
    first: int  # index in the request's dialogs of its first own message
    last: int  # index of the user message it ends with

    @property
    def prompt(self) -> str:
        return content_text(self.messages[-1].content, "\n")

    def transcript(self) -> str:
        """The dialog as ``role: text`` lines, for a judge's prompt."""
        return "\n".join(f"{m.role}: {content_text(m.content, chr(10))}" for m in self.messages)


def split_dialogs(messages: list[Any]) -> list[Dialog]:
    """The dialogs of ``messages``; a 400 naming ``dialogs`` (or the message) when there is nothing to answer."""
    if not messages:
        raise BadRequestError("needs at least one user message to answer", field="dialogs")
    head = 0
    while head < len(messages) and messages[head].role == "system":
        head += 1
    shared = messages[:head]
    dialogs, start = [], head
    for i in range(head, len(messages)):
        answered = i + 1 < len(messages) and messages[i + 1].role == "assistant"
        if messages[i].role != "user" or answered:
            continue
        own = messages[start:i + 1]
        prefix = [] if any(m.role == "system" for m in own) else shared
        dialogs.append(Dialog([*prefix, *own], start, i))
        start = i + 1
    if start < len(messages):
        where = "dialogs" if not dialogs and start == head else f"dialogs[{start}]"
        raise BadRequestError(
            "no user message left to answer: the list must end with a user message (messages after the "
            "last one that no assistant answers belong to no dialog)", field=where)
    if not dialogs:
        raise BadRequestError("needs at least one user message to answer, not only system messages", field="dialogs")
    return dialogs
