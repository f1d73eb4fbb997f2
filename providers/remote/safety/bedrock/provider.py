"""Bedrock Guardrails as shields: run-shield is one ApplyGuardrail call on the messages' text."""

from __future__ import annotations

import re
from typing import Any

from providers.utils.bedrock.client import BedrockClients
from providers.utils.messages import message_text
from stack.apis.inference import Message
from stack.apis.safety import RunShieldResponse, SafetyViolation, ViolationLevel
from stack.apis.shields import Shield
from stack.errors import BadRequestError, ConflictError

#: a guardrail version: DRAFT or a published version number
_VERSION = re.compile(r"^(DRAFT|[1-9][0-9]{0,7})$")
_SOURCES = ("INPUT", "OUTPUT")
#: run-shield params a request may set
_REQUEST_PARAMS = frozenset({"guardrailVersion", "source"})


def _version(params: dict[str, Any], field: str) -> str:
    version = str(params.get("guardrailVersion", ""))
    if not _VERSION.match(version):
        raise BadRequestError(f"needs the guardrail's version, 'DRAFT' or a version number (got {version!r})",
                              field=field)
    return version


class BedrockGuardrails:
    """A shield names a guardrail (``provider_shield_id``, else ``shield_id``) and its version in ``params``."""

    def __init__(self, clients: BedrockClients) -> None:
        self.clients = clients
        self._versions: dict[str, tuple[str, str]] = {}  # guardrail id -> (shield id, version)

    async def shutdown(self) -> None:
        return None

    async def register_shield(self, shield: Shield) -> Shield:
        params = shield.params or {}
        unknown = sorted(set(params) - {"guardrailVersion"})
        if unknown:
            raise BadRequestError(f"remote::bedrock shields take only guardrailVersion, got {unknown}", field="params")
        version = _version(params, "params.guardrailVersion")
        taken = self._versions.get(shield.provider_resource_id)
        if taken is not None and taken[0] != shield.identifier and taken[1] != version:
            raise ConflictError(f"guardrail {shield.provider_resource_id!r} is shield {taken[0]!r} at version "
                                f"{taken[1]!r}; register version {version!r} under that shield or the same version")
        self._versions[shield.provider_resource_id] = (shield.identifier, version)
        return shield

    async def unregister_shield(self, shield: Shield) -> None:
        if self._versions.get(shield.provider_resource_id, ("",))[0] == shield.identifier:
            del self._versions[shield.provider_resource_id]

    async def run_shield(self, shield_id: str, messages: list[Message], params: dict[str, Any] | None = None
                         ) -> RunShieldResponse:
        params = params or {}
        unknown = sorted(set(params) - _REQUEST_PARAMS)
        if unknown:
            raise BadRequestError(f"remote::bedrock shields take guardrailVersion and source, got {unknown}",
                                  field="params")
        version = _version(params, "params.guardrailVersion") if "guardrailVersion" in params \
            else self._versions.get(shield_id, ("", "DRAFT"))[1]
        source = params.get("source") or ("OUTPUT" if messages and messages[-1].role == "assistant" else "INPUT")
        if source not in _SOURCES:
            raise BadRequestError(f"must be INPUT or OUTPUT, got {source!r}", field="params.source")
        content = [{"text": {"text": text}} for text in (message_text(m) for m in messages) if text.strip()]
        if not content:
            raise BadRequestError("no message has text for the guardrail to check", field="messages")
        answer = await self.clients.call("apply_guardrail", f"guardrail {shield_id!r} version {version}",
                                         guardrailIdentifier=shield_id, guardrailVersion=version, source=source,
                                         content=content)
        return RunShieldResponse(violation=_violation(answer, shield_id, version, source))


def _policies(assessments: list[dict[str, Any]]) -> list[str]:
    """The policies whose findings the guardrail acted on, e.g. ['contentPolicy', 'topicPolicy']."""
    acted = []
    for assessment in assessments:
        for policy, found in assessment.items():
            if isinstance(found, dict) and any(
                    isinstance(item, dict) and item.get("action") not in (None, "NONE")
                    for items in found.values() if isinstance(items, list) for item in items):
                acted.append(policy)
    return list(dict.fromkeys(acted))


def _violation(answer: dict[str, Any], guardrail: str, version: str, source: str) -> SafetyViolation | None:
    if answer.get("action") != "GUARDRAIL_INTERVENED":
        return None
    assessments = answer.get("assessments") or []
    said = " ".join(o.get("text", "") for o in answer.get("outputs") or [] if o.get("text"))
    return SafetyViolation(
        violation_level=ViolationLevel.error,
        user_message=said or f"Blocked by Bedrock guardrail {guardrail!r}",
        metadata={"violation_type": ",".join(_policies(assessments)) or "guardrail_intervened",
                  "guardrail_id": guardrail, "guardrail_version": version, "source": source,
                  "action_reason": answer.get("actionReason"), "assessments": assessments},
    )
