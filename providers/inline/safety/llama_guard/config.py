"""Config of ``inline::llama-guard`` (pydantic only: cheap to import)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ._prompt import CATEGORIES


class LlamaGuardConfig(BaseModel):
    """``config:`` of an ``inline::llama-guard`` provider; ``config: {}`` checks every category."""

    model_config = ConfigDict(extra="forbid")

    excluded_categories: list[str] = Field(
        default_factory=list,
        description="Category codes (S1..S14) not checked: left out of the prompt, and a verdict naming "
        "only these counts as safe",
    )

    @field_validator("excluded_categories")
    @classmethod
    def _known_codes(cls, codes: list[str]) -> list[str]:
        normalised = list(dict.fromkeys(code.strip().upper() for code in codes))
        unknown = [code for code in normalised if code not in CATEGORIES]
        if unknown:
            raise ValueError(f"unknown categories {', '.join(map(repr, unknown))}; "
                             f"Llama Guard 3 has {', '.join(CATEGORIES)}")
        if len(normalised) == len(CATEGORIES):
            raise ValueError("excluding every category leaves nothing to check")
        return normalised

    def checked_categories(self) -> dict[str, str]:
        return {code: name for code, name in CATEGORIES.items() if code not in self.excluded_categories}
