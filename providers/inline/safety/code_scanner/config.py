"""Config of ``inline::code-scanner``: llama-stack 0.1.0's is empty; rules can be switched off."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator


class CodeScannerConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    disabled_rules: list[str] = Field(
        default_factory=list, description="Ids of rules not to apply (see the rule table in the docs)"
    )

    @field_validator("disabled_rules")
    @classmethod
    def _known(cls, value: list[str]) -> list[str]:
        from ._rules import RULES

        known = {rule.id for rule in RULES}
        unknown = [name for name in value if name not in known]
        if unknown:
            raise ValueError(f"unknown rule(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        return value
