"""The ``inline::code-scanner`` safety provider."""

from __future__ import annotations

import asyncio
from typing import Any

from stack.apis.inference import Message
from stack.apis.safety import RunShieldResponse, SafetyViolation, ViolationLevel
from stack.apis.shields import Shield
from stack.errors import BadRequestError

from providers.utils.messages import message_text
from ._rules import RULES, Finding, scan
from .config import CodeScannerConfig

#: characters scanned on the event loop; more goes to a thread so other requests are not held up
_INLINE_LIMIT = 32_768


class CodeScannerSafety:
    """Any shield of this provider applies every enabled rule; the shield takes no params."""

    def __init__(self, config: CodeScannerConfig) -> None:
        self.rules = tuple(rule for rule in RULES if rule.id not in set(config.disabled_rules))

    async def register_shield(self, shield: Shield) -> Shield:
        _no_params(shield.params, "params")
        return shield

    async def run_shield(self, shield_id: str, messages: list[Message], params: dict[str, Any] | None = None
                         ) -> RunShieldResponse:
        _no_params(params, "params")
        texts = [message_text(message) for message in messages]
        if sum(len(t) for t in texts) > _INLINE_LIMIT:
            findings = await asyncio.to_thread(self._scan, texts)
        else:
            findings = self._scan(texts)
        return RunShieldResponse(violation=_violation(findings))

    def _scan(self, texts: list[str]) -> list[tuple[int, Finding]]:
        return [(i, f) for i, text in enumerate(texts) for f in scan(text, self.rules)]


def _no_params(params: Any, field: str) -> None:
    if params:
        raise BadRequestError(f"inline::code-scanner takes no params, got {sorted(params)}", field=field)


def _violation(findings: list[tuple[int, Finding]]) -> SafetyViolation | None:
    if not findings:
        return None
    rule_ids = list(dict.fromkeys(f.rule.id for _, f in findings))
    matches = [{"rule": f.rule.id, "cwe": f.rule.cwe, "description": f.rule.description, "language": f.language,
                "message_index": i, "line": f.line} for i, f in findings]
    return SafetyViolation(
        violation_level=ViolationLevel.error,
        user_message="The code in this conversation looks insecure: "
        + "; ".join(next(f.rule.description for _, f in findings if f.rule.id == r) for r in rule_ids) + ".",
        metadata={"violation_type": ",".join(rule_ids), "rules": rule_ids, "matches": matches},
    )
