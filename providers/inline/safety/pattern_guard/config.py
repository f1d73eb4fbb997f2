"""Config of ``inline::pattern-guard`` (pydantic and ``re`` only: cheap to import)."""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from stack.apis.safety import ViolationLevel

#: the built-in detectors, in the order they are checked and reported
DETECTOR_NAMES = ("credit_card", "secret", "email", "phone")

#: what each detector does when it matches, unless the config says otherwise
DETECTOR_DEFAULTS: dict[str, dict[str, Any]] = {
    "credit_card": {
        "violation_level": ViolationLevel.error,
        "user_message": "The message contains a payment card number. Please remove it and try again.",
    },
    "secret": {
        "violation_level": ViolationLevel.error,
        "user_message": "The message contains what looks like an API key, token or password. "
        "Please remove it (and rotate the credential).",
    },
    "email": {
        "violation_level": ViolationLevel.warn,
        "user_message": "The message contains an e-mail address.",
    },
    "phone": {
        "violation_level": ViolationLevel.warn,
        "user_message": "The message contains a phone number.",
    },
}


class DetectorSettings(BaseModel):
    """One built-in detector: on or off, and what a match reports."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(True, description="Run this detector; a shield can narrow further but never re-enable it")
    violation_level: ViolationLevel = Field(description="Level of the violation a match reports: info, warn or error")
    user_message: str = Field(min_length=1, description="Message for the user when this detector decides the violation")


def _detector_field(name: str, what: str) -> Any:
    defaults = DETECTOR_DEFAULTS[name]
    return Field(
        default_factory=lambda: DetectorSettings(**defaults),
        description=f"{what}; on by default at level {defaults['violation_level'].value}",
    )


class DetectorsConfig(BaseModel):
    """The built-in detectors. Each takes ``true``/``false`` or a mapping of
    ``DetectorSettings``; keys left out keep the detector's defaults."""

    model_config = ConfigDict(extra="forbid")

    credit_card: DetectorSettings = _detector_field(
        "credit_card", "Payment card numbers: 13-19 digits, plain or grouped by spaces or dashes, Luhn-checked")
    secret: DetectorSettings = _detector_field(
        "secret", "API keys and tokens (sk-, AKIA/ASIA, ghp_/github_pat_, xox?-, AIza, private-key blocks) and "
        "long high-entropy values after words like key, token, secret or password")
    email: DetectorSettings = _detector_field("email", "E-mail addresses")
    phone: DetectorSettings = _detector_field(
        "phone", "Phone numbers: international (+CC ...), North American (555-123-4567) and national trunk-0 formats")

    @model_validator(mode="before")
    @classmethod
    def _fill_defaults(cls, data: Any) -> Any:
        # `email: false` is shorthand, and a partial mapping keeps the other defaults
        if not isinstance(data, dict):
            return data
        filled = dict(data)
        for name, value in data.items():
            if name not in DETECTOR_DEFAULTS:
                continue
            if isinstance(value, bool):
                value = {"enabled": value}
            if isinstance(value, dict):
                filled[name] = {**DETECTOR_DEFAULTS[name], **value}
        return filled


def _keyword_pattern(keyword: str) -> str:
    """A keyword as a whole word or phrase: any run of whitespace matches any other.

    The "not after a word character" check comes after the first character,
    not before it: a pattern that opens with a literal lets ``re`` skip ahead.
    """
    body = r"\s+".join(re.escape(part) for part in keyword.split())
    if re.match(r"\w", keyword):
        first = re.escape(keyword[0])
        body = first + r"(?<!\w.)" + body[len(first):]
    return body + (r"(?!\w)" if re.search(r"\w$", keyword) else "")


class PatternRule(BaseModel):
    """A rule of your own: a regex or a list of keywords."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$", max_length=64,
        description="Name of the rule, reported in the violation's metadata and used in shield params",
    )
    regex: str | None = Field(
        None, description="Python regular expression (`re` syntax) searched for in the text of each message")
    keywords: list[str] | None = Field(
        None, min_length=1,
        description="Words or phrases matched as whole words (any whitespace between a phrase's words)",
    )
    case_sensitive: bool = Field(False, description="Match case exactly; by default case is ignored")
    violation_level: ViolationLevel = Field(
        ViolationLevel.error, description="Level of the violation a match reports: info, warn or error")
    user_message: str | None = Field(
        None, description="Message for the user when this rule decides the violation "
        "(default: 'The message matches the content rule <name>.')",
    )

    @field_validator("keywords")
    @classmethod
    def _keywords_have_text(cls, keywords: list[str] | None) -> list[str] | None:
        if keywords is not None and any(not k.strip() for k in keywords):
            raise ValueError("keywords must not be empty or blank")
        return keywords

    @model_validator(mode="after")
    def _one_pattern_that_compiles(self) -> "PatternRule":
        if (self.regex is None) == (self.keywords is None):
            raise ValueError(f"rule {self.name!r}: give exactly one of regex or keywords")
        try:
            pattern = self.compile()
        except re.error as exc:
            raise ValueError(f"rule {self.name!r}: invalid regex {self.regex!r}: {exc}") from None
        if pattern.search("") is not None:
            # such a rule would flag every message, including empty ones
            raise ValueError(f"rule {self.name!r}: regex {self.regex!r} matches the empty string")
        return self

    def compile(self) -> re.Pattern[str]:
        """The rule's pattern. Keywords of a case-insensitive rule come out
        lowercase, to search lowercased text (several times faster than IGNORECASE)."""
        if self.regex is not None:
            return re.compile(self.regex, 0 if self.case_sensitive else re.IGNORECASE)
        words = {k.strip() if self.case_sensitive else k.strip().lower() for k in self.keywords or []}
        # longest first, so "credit card number" wins over "credit card"
        return re.compile("|".join(_keyword_pattern(w) for w in sorted(words, key=len, reverse=True)))

    def folds_case(self) -> bool:
        """Whether text must be lowercased before the pattern searches it."""
        return self.keywords is not None and not self.case_sensitive

    def message(self) -> str:
        return self.user_message or f"The message matches the content rule {self.name!r}."


class PatternGuardConfig(BaseModel):
    """``config:`` of an ``inline::pattern-guard`` provider; ``config: {}`` runs every built-in detector."""

    model_config = ConfigDict(extra="forbid")

    detectors: DetectorsConfig = Field(
        default_factory=DetectorsConfig,
        description="The built-in detectors (credit_card, secret, email, phone): `false` switches one off, "
        "a mapping changes its enabled / violation_level / user_message",
    )
    rules: list[PatternRule] = Field(
        default_factory=list, description="Rules of your own, checked after the detectors, in this order")

    @model_validator(mode="after")
    def _rule_names_are_unique(self) -> "PatternGuardConfig":
        seen: set[str] = set()
        for rule in self.rules:
            if rule.name in DETECTOR_NAMES:
                raise ValueError(f"rule name {rule.name!r} is the name of a built-in detector; pick another")
            if rule.name in seen:
                raise ValueError(f"rule name {rule.name!r} is used twice")
            seen.add(rule.name)
        return self

    def enabled_detectors(self) -> list[str]:
        return [name for name in DETECTOR_NAMES if getattr(self.detectors, name).enabled]
