"""Detectors and rules as one list of checks, and the violation their matches add up to."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Literal

from stack.apis.safety import SafetyViolation, ViolationLevel

from ._detectors import BUILTIN
from ._params import Selection
from .config import PatternGuardConfig, PatternRule

SEVERITY = {ViolationLevel.info: 0, ViolationLevel.warn: 1, ViolationLevel.error: 2}
#: masked examples kept per check in the metadata
MAX_SAMPLES = 3


@dataclass(frozen=True)
class Check:
    name: str
    kind: Literal["detectors", "rules"]
    level: ViolationLevel
    user_message: str
    find: Callable[[str], list[str]]
    sample: Callable[[str], str]


def _mask_rule_match(match: str) -> str:
    # a rule's regex may well match something sensitive (an id number, say)
    return match[:2] + "***" if len(match) > 4 else "***"


def _rule_check(rule: PatternRule) -> Check:
    pattern = rule.compile()
    fold = rule.folds_case()

    def find(text: str) -> list[str]:
        return [m.group() for m in pattern.finditer(text.lower() if fold else text) if m.group()]

    if rule.keywords is not None:
        # report the configured spelling of a keyword: it is config, not user text
        by_key = {" ".join(k.split()).lower(): k.strip() for k in rule.keywords}

        def sample(match: str) -> str:
            return by_key.get(" ".join(match.split()).lower(), _mask_rule_match(match))
    else:
        sample = _mask_rule_match
    return Check(rule.name, "rules", rule.violation_level, rule.message(), find, sample)


def build_checks(config: PatternGuardConfig) -> list[Check]:
    """Every enabled detector, then every rule, in config order; regexes compiled here, once."""
    checks = []
    for name in config.enabled_detectors():
        settings = getattr(config.detectors, name)
        detector = BUILTIN[name]
        checks.append(Check(name, "detectors", settings.violation_level, settings.user_message,
                            detector.find, detector.mask))
    return checks + [_rule_check(rule) for rule in config.rules]


def scan(checks: list[Check], selection: Selection, texts: list[str]) -> list[tuple[Check, list[str]]]:
    """(check, matches) for every selected check that matches some text."""
    hits = []
    for check in checks:
        if not selection.allows(check.kind, check.name):
            continue
        matches = [m for text in texts for m in check.find(text)]
        if matches:
            hits.append((check, matches))
    return hits


def violation(hits: list[tuple[Check, list[str]]]) -> SafetyViolation | None:
    """The most severe hit decides level and message (the first one on a tie);
    the metadata lists every hit, with masked samples only."""
    if not hits:
        return None
    ranked = sorted(hits, key=lambda hit: -SEVERITY[hit[0].level])  # stable: config order within a level
    top = ranked[0][0]
    matches = []
    for check, found in ranked:
        samples = list(dict.fromkeys(check.sample(m) for m in found))[:MAX_SAMPLES]
        matches.append({"name": check.name, "kind": check.kind[:-1], "violation_level": check.level.value,
                        "count": len(found), "samples": samples})
    return SafetyViolation(
        violation_level=top.level,
        user_message=top.user_message,
        metadata={"violation_type": ",".join(check.name for check, _ in ranked), "matches": matches},
    )

