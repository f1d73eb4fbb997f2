"""The insecure-code rules and the scan: code blocks out of a message, each rule of the
block's language over it, one finding per rule and line.

The rules are regexes over single lines, written so that none can backtrack
badly. They look for the well-known weak spots of each language (the CWE they
stand for is in each rule), not for every possible one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

PY, C, JS = "python", "c", "javascript"

#: a fenced block's info string -> the language whose rules apply
FENCE_LANGUAGES = {
    "python": PY, "py": PY, "python3": PY, "ipython": PY,
    "c": C, "h": C, "cpp": C, "c++": C, "cc": C, "cxx": C, "hpp": C,
    "javascript": JS, "js": JS, "jsx": JS, "typescript": JS, "ts": JS, "tsx": JS, "node": JS, "html": JS,
}
FENCE = re.compile(r"^[ \t]*(```|~~~)[ \t]*([\w+#.-]*)[^\n]*\n(.*?)^[ \t]*\1[ \t]*$", re.MULTILINE | re.DOTALL)


@dataclass(frozen=True)
class Rule:
    id: str
    cwe: str
    description: str
    pattern: re.Pattern[str]
    #: the languages it applies to; None: any code (SQL strings, secrets)
    languages: frozenset[str] | None = None

    def applies_to(self, language: str | None) -> bool:
        return self.languages is None or language is None or language in self.languages


def _rule(id: str, cwe: str, description: str, pattern: str, *languages: str, flags: int = 0) -> Rule:
    return Rule(id, cwe, description, re.compile(pattern, flags), frozenset(languages) or None)


#: the start of an SQL statement inside a string literal
_SQL = r"""\b(?:select\s[^"'\n]*?\bfrom|insert\s+into|update\s+\w+\s+set|delete\s+from)\b"""

RULES: tuple[Rule, ...] = (
    _rule("eval-injection", "CWE-95", "eval/exec/new Function run code built from data",
          r"(?<![\w.])(?:eval|exec)\s*\(|\bnew\s+Function\s*\(", PY, JS),
    _rule("python-unsafe-deserialization", "CWE-502", "pickle, marshal or shelve load untrusted data as objects",
          r"\b(?:c?[Pp]ickle|marshal|dill|shelve)\.(?:loads?|open|Unpickler)\s*\(", PY),
    _rule("python-yaml-load", "CWE-502", "yaml.load without SafeLoader builds arbitrary objects",
          r"\byaml\.(?:unsafe_load|full_load)\s*\(|\byaml\.load\s*\((?![^)\n]*Loader\s*=\s*(?:yaml\.)?C?SafeLoader)", PY),
    _rule("python-shell-injection", "CWE-78", "a shell runs a command line built from data",
          r"\bsubprocess\.\w+\([^\n]*\bshell\s*=\s*True|\bos\.(?:system|popen)\s*\(", PY),
    _rule("weak-hash", "CWE-328", "MD5 and SHA-1 are broken for security uses",
          r"\bhashlib\.(?:md5|sha1)\s*\(|\bhashlib\.new\s*\(\s*['\"](?:md5|sha1)['\"]"
          r"|\bcreateHash\s*\(\s*['\"](?:md5|sha1)['\"]|\b(?:MD5|SHA1)_Init\s*\(", PY, JS, C),
    _rule("tls-verification-disabled", "CWE-295", "TLS certificates are not verified",
          r"\bverify\s*=\s*False\b|\bCERT_NONE\b|rejectUnauthorized\s*:\s*false", PY, JS),
    _rule("c-unbounded-copy", "CWE-120", "strcpy/strcat/sprintf write past the buffer on long input",
          r"(?<![\w.])(?:strcpy|strcat|sprintf|vsprintf|wcscpy|wcscat)\s*\(", C),
    _rule("c-gets", "CWE-242", "gets cannot bound its input (removed from C11)", r"(?<![\w.])gets\s*\(", C),
    _rule("c-format-string", "CWE-134", "printf with a non-literal format string",
          r"(?<![\w.])printf\s*\(\s*[A-Za-z_]\w*\s*\)", C),
    _rule("js-dom-injection", "CWE-79", "HTML from data goes into the page unescaped",
          r"\.(?:innerHTML|outerHTML)\s*\+?=|\bdocument\.write(?:ln)?\s*\(|\binsertAdjacentHTML\s*\(", JS),
    _rule("sql-string-building", "CWE-89", "an SQL statement is built by concatenating or formatting data",
          rf"""(?i)(?:"[^"\n]*{_SQL}[^"\n]*"|'[^'\n]*{_SQL}[^'\n]*')\s*(?:\+|%\s*[\w(]|\.format\s*\()"""
          rf"""|\bf(?:"[^"\n]*{_SQL}[^"\n]*\{{|'[^'\n]*{_SQL}[^'\n]*\{{)"""),
    _rule("hardcoded-secret", "CWE-798", "a credential is written into the code",
          r"""(?i)\b(?:password|passwd|pwd|secret|api_?key|access_?token|auth_?token)\w*\s*[:=]\s*["'][^"'\s]{6,}["']"""
          r"""|\bAKIA[0-9A-Z]{16}\b|-----BEGIN (?:RSA |EC |DSA |OPENSSH )?PRIVATE KEY-----|\bghp_[A-Za-z0-9]{36}\b"""
          r"""|\bsk-[A-Za-z0-9_-]{20,}"""),
)


@dataclass(frozen=True)
class Finding:
    rule: Rule
    language: str | None
    line: int


def code_blocks(text: str) -> list[tuple[str | None, str]]:
    """(language, code) of each fenced block; no fences: the whole text as code of any language."""
    blocks = [(FENCE_LANGUAGES.get(m.group(2).lower()), m.group(3)) for m in FENCE.finditer(text)]
    return blocks or [(None, text)]


def scan(text: str, rules: tuple[Rule, ...] = RULES) -> list[Finding]:
    """Every (rule, line) that matches in the code of ``text``; line numbers count within each block."""
    findings = []
    for language, code in code_blocks(text):
        applicable = [rule for rule in rules if rule.applies_to(language)]
        for number, line in enumerate(code.splitlines(), start=1):
            findings.extend(Finding(rule, language, number) for rule in applicable if rule.pattern.search(line))
    return findings
