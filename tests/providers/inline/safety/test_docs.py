"""docs/providers/pattern-guard.md and llama-guard.md document every config key
(a table row whose first cell is the key in backticks), nested ones included."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from providers.inline.safety.pattern_guard.config import DetectorSettings, DetectorsConfig, PatternRule
from stack.plugins import collect_providers, get_plugin_manager

DOCS = Path(__file__).resolve().parents[4] / "docs"
ROW_KEY = re.compile(r"^\|\s*`([^`]+)`\s*\|", re.MULTILINE)
HEADING = re.compile(r"^#{2,6} (.*)$", re.MULTILINE)


def rows(text: str) -> set[str]:
    return set(ROW_KEY.findall(text))


def section(text: str, title: str) -> str:
    """The text under the heading ``title``, up to the next heading."""
    headings = list(HEADING.finditer(text))
    for i, match in enumerate(headings):
        if match.group(1).strip() == title:
            end = headings[i + 1].start() if i + 1 < len(headings) else len(text)
            return text[match.end():end]
    raise AssertionError(f"no heading {title!r}")


@pytest.mark.parametrize("provider_type, page", [
    ("inline::pattern-guard", "pattern-guard.md"),
    ("inline::llama-guard", "llama-guard.md"),
])
def test_every_top_level_config_key_has_a_row(provider_type, page):
    config = collect_providers(get_plugin_manager(load_entry_points=False))[("safety", provider_type)].spec.config
    text = (DOCS / "providers" / page).read_text()
    assert set(config.model_fields) - rows(section(text, "Config")) == set()
    assert provider_type in text


def test_pattern_guard_nested_keys_have_rows():
    text = (DOCS / "providers" / "pattern-guard.md").read_text()
    assert {f"detectors.{name}" for name in DetectorsConfig.model_fields} - rows(section(text, "Config")) == set()
    assert set(DetectorSettings.model_fields) - rows(section(text, "Detector settings")) == set()
    assert set(PatternRule.model_fields) - rows(section(text, "Rules")) == set()


def test_the_safety_api_page_lists_both_providers():
    text = (DOCS / "apis" / "safety.md").read_text()
    for route in ("POST /v1/shields", "GET /v1/shields", "POST /v1/safety/run-shield"):
        assert route in text
    for page in ("pattern-guard.md", "llama-guard.md"):
        assert f"(../providers/{page})" in text


def test_the_code_scanner_page_documents_its_config_and_every_rule():
    from providers.inline.safety.code_scanner import CodeScannerConfig
    from providers.inline.safety.code_scanner._rules import RULES

    text = (DOCS / "providers" / "code-scanner.md").read_text()
    assert set(CodeScannerConfig.model_fields) - rows(section(text, "Config")) == set()
    documented = re.findall(r"^\| `([a-z-]+)` \| (CWE-\d+) \|", section(text, "Rules"), re.MULTILINE)
    assert documented == [(rule.id, rule.cwe) for rule in RULES]
