"""The built-in detectors: compiled regexes plus the checks a regex cannot do
(Luhn, digit counts, entropy), and how each shows a match without revealing it.

Speed comes from letting ``re`` skip ahead: every pattern starts with a literal
or a small character set, and the lookbehinds that anchor a match come after
the first characters (a pattern that opens with a lookbehind is tried at
every position, several times slower). Cheap ``in`` tests skip the scans a
text cannot match. Repeats are bounded or atomic, so no input backtracks
without end.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True)
class Detector:
    name: str
    #: the matches in a text, already validated (a Luhn-invalid number is not one)
    find: Callable[[str], list[str]]
    #: a form of a match that is safe to put in metadata and logs
    mask: Callable[[str], str]


def _digits(text: str) -> str:
    return re.sub(r"\D", "", text)


# -- payment cards -----------------------------------------------------------------------------

_CARD = re.compile(
    # four digits first (most digit runs in prose are shorter), then: not the tail of a longer number
    r"[2-6]\d{3}(?<!\d.{4})(?:"
    r"\d{9,15}(?!\d)"  # 13-19 digits in one run
    # grouped: 4-4-4-4(-3), 4-4-5, 4-6-5 (Amex), 4-6-4 (Diners); one separator throughout
    r"|(?<!\d[ -].{4})(?P<sep>[ -])(?:\d{4}(?P=sep)\d{4}(?P=sep)\d{4}(?:(?P=sep)\d{3})?|\d{4}(?P=sep)\d{5}|\d{6}(?P=sep)\d{4,5})"
    r"(?!\d|[ -]\d)"
    r")"
)


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def find_cards(text: str) -> list[str]:
    return [m.group() for m in _CARD.finditer(text) if luhn_ok(_digits(m.group()))]


def mask_card(match: str) -> str:
    digits = _digits(match)
    return "*" * (len(digits) - 4) + digits[-4:]  # the last four, as receipts print them


# -- secrets -----------------------------------------------------------------------------------

#: every prefixed key holds one of these (tested with `in`, far cheaper than a scan); few and short
_PREFIX_HINTS = ("k-", "k_", "IA", "_pat_", "xox", "AIza", "-----")
#: GitHub's five prefixes: a pattern with a literal start, which `re` searches about as fast as `in`
_GITHUB_HINT = re.compile(r"gh[pousr]_")

# Prefixed keys: the prefix names the issuer, so a match needs no keyword around it.
_PREFIXED = re.compile(
    r"(?:"
    r"(?P<openai>sk-(?:proj-|ant-|svcacct-|admin-)?[A-Za-z0-9_-]{20,})"
    r"|[sr]k_(?:live|test)_[A-Za-z0-9]{16,}"  # Stripe
    r"|A[KS]IA[0-9A-Z]{16}(?![0-9A-Za-z])"  # AWS access key id
    r"|gh[pousr]_[A-Za-z0-9]{36,}"  # GitHub
    r"|github_pat_[A-Za-z0-9_]{22,}"
    r"|xox[abposr]-[A-Za-z0-9-]{10,}"  # Slack
    r"|AIza[0-9A-Za-z_-]{35}"  # Google API key
    r")"
    r"|-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----"
)

#: words that introduce a credential; looked for in the lowercased text
_ASSIGN_HINTS = ("key", "token", "secret", "passw", "pwd", "credential", "bearer", "auth")

# From such a word: a separator (`:`, `=`, `=>`, or whitespace and maybe "is"), an optional quote, the value.
_ASSIGNED = re.compile(
    r"(?i)(?:key|token|secret|passw(?:or)?d|pwd|credentials?|bearer|auth)(?>\w*)[\"']?"
    r"(?:\s*(?:=>|[:=])\s*|\s+(?:is\s+)?)[\"']?"
    r"(?P<value>(?>[A-Za-z0-9_\-+/=.~]{20,}))"
)

_MIN_ENTROPY_BITS = 3.0


def entropy(text: str) -> float:
    """Shannon entropy in bits per character."""
    counts = Counter(text)
    n = len(text)
    return -sum(c / n * math.log2(c / n) for c in counts.values())


def _random_looking(value: str) -> bool:
    return (any(c.isdigit() for c in value) and any(c.isalpha() for c in value)
            and entropy(value) >= _MIN_ENTROPY_BITS)


def _openai_like(key: str) -> bool:
    # "sk-learn-is-a-great-library" is prose; real keys mix upper, lower and digits
    body = key.split("-", 1)[1]
    return any(c.isupper() for c in body) and any(c.islower() for c in body) and any(c.isdigit() for c in body)


def _assigned_matches(text: str) -> list[re.Match[str]]:
    lowered = text.lower()
    if len(lowered) != len(text):  # a few characters lowercase to two; positions would not line up
        return list(_ASSIGNED.finditer(text))
    starts = sorted({i for hint in _ASSIGN_HINTS for i in _find_all(lowered, hint)})
    matches, end = [], 0
    for start in starts:
        if start < end:
            continue
        m = _ASSIGNED.match(text, start)
        if m is not None:
            matches.append(m)
            end = m.end()
    return matches


def _find_all(text: str, word: str) -> list[int]:
    found, i = [], text.find(word)
    while i != -1:
        found.append(i)
        i = text.find(word, i + 1)
    return found


def find_secrets(text: str) -> list[str]:
    found = []
    taken = set()  # where a prefixed key starts, so "api_key=sk-..." counts once
    if any(hint in text for hint in _PREFIX_HINTS) or _GITHUB_HINT.search(text):
        for m in _PREFIXED.finditer(text):
            before = text[m.start() - 1] if m.start() else " "
            if before.isalnum() or before in "_-":  # inside a longer word: "task-..." holds no "sk-" key
                continue
            taken.add(m.start())
            if m.group("openai") is None or _openai_like(m.group("openai")):
                found.append(m.group())
    for m in _assigned_matches(text):
        value = m.group("value")
        if m.start("value") not in taken and _random_looking(value):
            found.append(value)
    return found


def mask_secret(match: str) -> str:
    if match.startswith("-----BEGIN"):
        return match  # the header of a key block, not the key
    return match[:4] + "****"  # enough to tell an AWS key from a GitHub token


# -- e-mail ------------------------------------------------------------------------------------

_EMAIL = re.compile(
    r"(?<![\w.%+-])[A-Za-z0-9][A-Za-z0-9._%+-]{0,63}@"
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,24}(?![\w-])"
)
_LOCAL_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._%+-")


def find_emails(text: str) -> list[str]:
    # From each "@" back to where the address could start, then one anchored match:
    # the same matches as scanning the whole text, without trying every position.
    found = []
    at = text.find("@")
    while at != -1:
        start = at
        while start > 0 and at - start < 64 and text[start - 1] in _LOCAL_CHARS:
            start -= 1
        m = _EMAIL.match(text, start)
        if m is not None:
            found.append(m.group())
        at = text.find("@", at + 1)
    return found


def mask_email(match: str) -> str:
    local, _, domain = match.partition("@")
    return f"{local[0]}***@{domain}"


# -- phone numbers -----------------------------------------------------------------------------

# international: +CC then digits, spaces, dots, dashes, parentheses; ends on a digit
_INTERNATIONAL = re.compile(r"\+(?<![\w+]\+)[1-9][\d ().-]{5,21}\d(?!\d)")
# North American with separators: (555) 123-4567, 555-123-4567, 555.123.4567, 1-800-555-1234
_NANP = re.compile(
    r"\([2-9]\d{2}\)(?<![\w+.-].....)[ .-]?\d{3}[ .-]\d{4}(?![\w-]|\.\d)"
    # fixed width (12), so what may precede it is checked once the whole number has matched
    r"|[2-9]\d{2}[ .-]\d{3}[ .-]\d{4}(?:(?<![\w+.-].{12})|(?<=(?<![\w+.-])1[ .-].{12}))(?![\w-]|\.\d)"
)
# national with a trunk 0: 030 1234567, 020 7946 0958, 06-12345678, 01 23 45 67 89
_TRUNK = re.compile(
    r"0(?<![\w+./-]0)(?:[1-9]\d{0,3}[ /-]\d{3,8}(?:[ -]\d{2,8}){0,3}|[1-9](?:[ .]\d{2}){4})(?![\w-]|[./]\d)"
)


def _international_ok(match: str) -> bool:
    digits = _digits(match)
    if not 8 <= len(digits) <= 15:  # E.164 allows at most 15
        return False
    # "+12345678 points" is a score, not a number: unseparated needs the length of a real one
    return len(digits) >= 10 or any(c in match for c in " ().-")


def find_phones(text: str) -> list[str]:
    found: list[re.Match[str]] = []
    if "+" in text:
        found += [m for m in _INTERNATIONAL.finditer(text) if _international_ok(m.group())]
    # "+1 (415) 555-2671" also holds a North American number: count the number once
    inside = [(m.start(), m.end()) for m in found]
    for m in [*_NANP.finditer(text), *(t for t in _TRUNK.finditer(text) if 9 <= len(_digits(t.group())) <= 12)]:
        if not any(start <= m.start() < end for start, end in inside):
            found.append(m)
    return [m.group() for m in found]


def mask_phone(match: str) -> str:
    return "***" + _digits(match)[-2:]


BUILTIN: dict[str, Detector] = {
    "credit_card": Detector("credit_card", find_cards, mask_card),
    "secret": Detector("secret", find_secrets, mask_secret),
    "email": Detector("email", find_emails, mask_email),
    "phone": Detector("phone", find_phones, mask_phone),
}
