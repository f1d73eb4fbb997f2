"""The ``filter_condition`` language of ``GET /v1/datasetio/rows``: a small, safe
expression language, parsed here and evaluated on each row (never ``eval``).

    condition  := or
    or         := and ("or" and)*
    and        := not ("and" not)*
    not        := "not" not | "(" or ")" | comparison
    comparison := column op literal
    op         := == | != | < | <= | > | >=
    literal    := "text" | 'text' | number | true | false | null

A column is a name (letters, digits, ``_``, ``-`` and ``.``) or a quoted name
in backticks. ``==``/``!=`` compare equal values of any type (1 == 1.0; a
missing column is null); an ordering between values of different kinds (a
string and a number) is false.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable, Iterable

from stack.errors import BadRequestError

FIELD = "filter_condition"
MAX_LENGTH = 4096

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<op>==|!=|<=|>=|<|>)
      | (?P<paren>[()])
      | (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
      | (?P<number>-?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)
      | (?P<quoted>`[^`]+`)
      | (?P<word>[A-Za-z_][A-Za-z0-9_.\-]*)
    )""",
    re.VERBOSE,
)
_KEYWORDS = {"and", "or", "not", "true", "false", "null"}
_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}

_ESCAPES = {"n": "\n", "t": "\t"}

Predicate = Callable[[dict[str, Any]], bool]


@dataclass
class _Token:
    kind: str
    text: str
    at: int


def _error(message: str) -> BadRequestError:
    return BadRequestError(message, field=FIELD)


def _tokens(text: str) -> list[_Token]:
    found, pos = [], 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        match = _TOKEN.match(text, pos)
        if match is None:
            raise _error(f"unexpected {text[pos:].strip()[:20]!r} at character {pos}")
        kind = match.lastgroup
        found.append(_Token(kind, match.group(kind), match.start(kind)))
        pos = match.end()
    return found


def _kind_of(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    return type(value).__name__


def _compare(op: str, left: Any, right: Any) -> bool:
    if op in ("==", "!="):
        return _COMPARE[op](left, right) and not (isinstance(left, bool) != isinstance(right, bool))
    if _kind_of(left) != _kind_of(right) or left is None or isinstance(left, (dict, list)):
        return False
    return _COMPARE[op](left, right)


class _Parser:
    def __init__(self, tokens: list[_Token], columns: Iterable[str] | None) -> None:
        self.tokens, self.pos = tokens, 0
        self.columns = set(columns) if columns is not None else None

    def peek(self) -> _Token | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self) -> _Token:
        token = self.peek()
        if token is None:
            raise _error("the condition ends too early")
        self.pos += 1
        return token

    def keyword(self, word: str) -> bool:
        token = self.peek()
        if token is not None and token.kind == "word" and token.text.lower() == word:
            self.pos += 1
            return True
        return False

    def parse_or(self) -> Predicate:
        terms = [self.parse_and()]
        while self.keyword("or"):
            terms.append(self.parse_and())
        return terms[0] if len(terms) == 1 else (lambda row: any(t(row) for t in terms))

    def parse_and(self) -> Predicate:
        terms = [self.parse_not()]
        while self.keyword("and"):
            terms.append(self.parse_not())
        return terms[0] if len(terms) == 1 else (lambda row: all(t(row) for t in terms))

    def parse_not(self) -> Predicate:
        if self.keyword("not"):
            inner = self.parse_not()
            return lambda row: not inner(row)
        token = self.peek()
        if token is not None and token.kind == "paren" and token.text == "(":
            self.pos += 1
            inner = self.parse_or()
            closing = self.take()
            if closing.text != ")":
                raise _error(f"expected ')' at character {closing.at}")
            return inner
        return self.parse_comparison()

    def parse_comparison(self) -> Predicate:
        token = self.take()
        if token.kind == "quoted":
            column = token.text[1:-1]
        elif token.kind == "word" and token.text.lower() not in _KEYWORDS:
            column = token.text
        else:
            raise _error(f"expected a column name at character {token.at}, got {token.text!r}")
        if self.columns is not None and column not in self.columns:
            raise _error(f"no column {column!r}; the dataset has {', '.join(sorted(self.columns)) or 'none'}")
        op = self.take()
        if op.kind != "op":
            raise _error(f"expected ==, !=, <, <=, > or >= after {column!r} at character {op.at}")
        value = self.literal(self.take())
        compare = op.text
        return lambda row: _compare(compare, row.get(column), value)

    @staticmethod
    def literal(token: _Token) -> Any:
        if token.kind == "string":
            return re.sub(r"\\(.)", lambda m: _ESCAPES.get(m[1], m[1]), token.text[1:-1])
        if token.kind == "number":
            number = float(token.text)
            return int(number) if number.is_integer() and re.fullmatch(r"-?\d+", token.text) else number
        if token.kind == "word" and token.text.lower() in ("true", "false", "null"):
            return {"true": True, "false": False, "null": None}[token.text.lower()]
        raise _error(f"expected a value (string, number, true, false, null) at character {token.at}, got {token.text!r}")


def parse_filter(condition: str | None, columns: Iterable[str] | None = None) -> Predicate | None:
    """The predicate ``condition`` describes (None when there is none); a bad
    condition, or one naming a column outside ``columns``, is a 400 naming
    ``filter_condition``."""
    if condition is None or not condition.strip():
        return None
    if len(condition) > MAX_LENGTH:
        raise _error(f"longer than {MAX_LENGTH} characters")
    parser = _Parser(_tokens(condition), columns)
    predicate = parser.parse_or()
    leftover = parser.peek()
    if leftover is not None:
        raise _error(f"unexpected {leftover.text!r} at character {leftover.at}")
    return predicate
