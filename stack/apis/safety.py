"""Safety: run a shield over messages and report what it flags."""

from __future__ import annotations

from enum import Enum
from typing import Any, Protocol, runtime_checkable

from pydantic import BaseModel, Field

from ._webmethod import webmethod
from .inference import Message


class ViolationLevel(str, Enum):
    info = "info"
    warn = "warn"
    error = "error"


class SafetyViolation(BaseModel):
    violation_level: ViolationLevel
    # Message to show the user when the shield blocks the content.
    user_message: str | None = None
    # The spec lists it as required; it is often empty, so an absent one reads as {}.
    metadata: dict[str, Any] = Field(default_factory=dict)


class RunShieldResponse(BaseModel):
    violation: SafetyViolation | None = None


@runtime_checkable
class Safety(Protocol):
    @webmethod(route="/v1/safety/run-shield", method="POST")
    async def run_shield(
        self,
        shield_id: str,
        messages: list[Message],
        params: dict[str, Any],
    ) -> RunShieldResponse: ...


PROTOCOL = Safety
