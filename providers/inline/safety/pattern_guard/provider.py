"""The ``inline::pattern-guard`` safety provider: deterministic detectors and rules."""

from __future__ import annotations

from typing import Any

from stack.apis.inference import Message
from stack.apis.safety import RunShieldResponse
from stack.apis.shields import Shield
from stack.errors import ConflictError, NotFoundError

from providers.utils.messages import message_text
from . import _params
from ._checks import build_checks, scan, violation
from .config import DETECTOR_NAMES, PatternGuardConfig


class PatternGuardSafety:
    """Shields are known by their ``provider_resource_id`` (what the router
    passes as ``shield_id``); each carries the detectors and rules it applies."""

    def __init__(self, config: PatternGuardConfig, *, provider_id: str, shields: Any = None) -> None:
        self.config = config
        self.provider_id = provider_id
        self.checks = build_checks(config)
        self._enabled = {"detectors": config.enabled_detectors(), "rules": [r.name for r in config.rules]}
        self._known = {"detectors": list(DETECTOR_NAMES), "rules": self._enabled["rules"]}
        self._shields_table = shields
        self._shields: dict[str, Shield] = {}  # by identifier
        self._selections: dict[str, _params.Selection] = {}  # by provider_resource_id

    def _parse(self, params: Any, field: str) -> _params.Selection:
        return _params.parse(params, enabled=self._enabled, known=self._known, field=field)

    # -- registry hooks ------------------------------------------------------------------------

    async def register_shield(self, shield: Shield) -> Shield:
        selection = self._parse(shield.params, "params")
        for other in self._shields.values():
            if (other.identifier != shield.identifier and other.provider_resource_id == shield.provider_resource_id
                    and self._selections[other.provider_resource_id] != selection):
                # the router hands over only provider_resource_id, so two shields sharing one must agree
                raise ConflictError(
                    f"shield {other.identifier!r} already uses provider_shield_id {shield.provider_resource_id!r} "
                    "with other params; pick another provider_shield_id")
        previous = self._shields.get(shield.identifier)
        self._shields[shield.identifier] = shield
        self._selections[shield.provider_resource_id] = selection
        if previous is not None and previous.provider_resource_id != shield.provider_resource_id:
            self._forget_if_unused(previous.provider_resource_id)  # the run config renamed it
        return shield

    async def unregister_shield(self, shield: Shield) -> None:
        self._shields.pop(shield.identifier, None)
        self._forget_if_unused(shield.provider_resource_id)

    def _forget_if_unused(self, provider_resource_id: str) -> None:
        if not any(s.provider_resource_id == provider_resource_id for s in self._shields.values()):
            self._selections.pop(provider_resource_id, None)

    async def _selection(self, shield_id: str) -> _params.Selection:
        selection = self._selections.get(shield_id)
        if selection is not None:
            return selection
        # registered through another replica sharing the metadata store: learn it now
        if self._shields_table is not None:
            for shield in await self._shields_table.list():
                if shield.provider_id == self.provider_id and shield.provider_resource_id == shield_id:
                    await self.register_shield(shield)
                    return self._selections[shield_id]
        raise NotFoundError("Shield", shield_id, self._selections)

    # -- the API -------------------------------------------------------------------------------

    async def run_shield(self, shield_id: str, messages: list[Message], params: dict[str, Any] | None = None
                         ) -> RunShieldResponse:
        selection = _params.narrow(await self._selection(shield_id), self._parse(params, "params"), field="params")
        texts = [message_text(m) for m in messages]
        return RunShieldResponse(violation=violation(scan(self.checks, selection, texts)))
