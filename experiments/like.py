"""SQL LIKE and ILIKE for the search syntax, matched in linear time on both databases.

Semantics (MLflow's, as its SQL stores run them on PostgreSQL): `%` matches any run of
characters, `_` exactly one, a backslash makes the character after it literal (`\\%`, `\\_`,
`\\\\`), and the whole value must match. LIKE is case-sensitive, ILIKE is not.

Why not a regular expression: Django's SQLite backend runs `__regex` through Python's `re`,
which backtracks. `'%a%a%a%a%a%a%a%a%b'` against forty a's took 2 s and two more `%a` 28 s,
holding the GIL all along, so one search froze every other request of the process.

PostgreSQL answers LIKE natively: its matcher gives a `%` up as soon as the rest of the
pattern cannot match any more, O(n·m). SQLite gets `studiolo_like()`, registered on each
connection: the pattern is split at `%` into segments of fixed length (literal characters
and `_`); the first must match at the start, the last at the end, and each one between is
found at its leftmost place after the previous one (the leftmost is always safe: a later
place leaves less room to the rest). Each segment is a regular expression without any
repetition, so finding it costs at most its length at each position: O(n·m) in all.
"""

from __future__ import annotations

import functools
import re
import sqlite3
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Lookup, Value
from django.db.utils import NotSupportedError

if TYPE_CHECKING:
    from django.db.models.sql.compiler import SQLCompiler, _AsSqlType

ESCAPE = "\\"
SQLITE_FUNCTION = "studiolo_like"


class _Wildcard:
    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return self.text


ANY_CHAR = _Wildcard("_")  # `_`: exactly one character
ANY_RUN = _Wildcard("%")  # `%`: any run of characters, the empty one included
Token = str | _Wildcard  # a literal character, or a wildcard


def like_tokens(pattern: str) -> list[Token]:
    tokens: list[Token] = []
    escaped = False
    for char in pattern:
        if escaped:
            tokens.append(char)
            escaped = False
        elif char == ESCAPE:
            escaped = True
        else:
            tokens.append(ANY_RUN if char == "%" else ANY_CHAR if char == "_" else char)
    if escaped:  # a trailing backslash stands for itself
        tokens.append(ESCAPE)
    return tokens


def canonical_pattern(pattern: str) -> str:
    """The same pattern where only `%`, `_` and the backslash are escaped, which PostgreSQL's
    `LIKE ... ESCAPE '\\'` and `studiolo_like` read alike (a trailing backslash, an error
    to PostgreSQL, becomes an escaped one)."""
    out = []
    for token in like_tokens(pattern):
        if isinstance(token, _Wildcard):
            out.append(token.text)
        else:
            out.append(ESCAPE + token if token in ("%", "_", ESCAPE) else token)
    return "".join(out)


@dataclass(frozen=True)
class _Segment:
    regex: re.Pattern[str]
    length: int


@dataclass(frozen=True)
class LikePattern:
    """A compiled pattern: its segments between `%` (at least one, possibly empty)."""

    segments: tuple[_Segment, ...]

    def matches(self, value: str) -> bool:
        first, last = self.segments[0], self.segments[-1]
        if len(self.segments) == 1:
            return len(value) == first.length and first.regex.match(value) is not None
        end = len(value) - last.length  # where the last segment must start
        if end < first.length or first.regex.match(value) is None:
            return False
        if last.regex.match(value, end) is None:
            return False
        position = first.length
        for segment in self.segments[1:-1]:
            if segment.length == 0:
                continue
            found = segment.regex.search(value, position, end)
            if found is None:
                return False
            position = found.end()
        return True


@functools.lru_cache(maxsize=256)
def compile_like(pattern: str, *, case_insensitive: bool) -> LikePattern:
    flags = re.DOTALL | (re.IGNORECASE if case_insensitive else 0)
    segments: list[_Segment] = []
    current: list[str] = []
    for token in [*like_tokens(pattern), ANY_RUN]:
        if token is ANY_RUN:
            segments.append(_Segment(re.compile("".join(current), flags), len(current)))
            current = []
        else:
            current.append("." if token is ANY_CHAR else re.escape(str(token)))
    return LikePattern(tuple(segments))


def like(value: str, pattern: str, *, case_insensitive: bool = False) -> bool:
    return compile_like(pattern, case_insensitive=case_insensitive).matches(value)


def _sqlite_like(value: Any, pattern: Any, case_insensitive: Any) -> int | None:
    if value is None or pattern is None:
        return None
    return int(like(str(value), str(pattern), case_insensitive=bool(case_insensitive)))


def register_sqlite_function(connection: BaseDatabaseWrapper, **kwargs: Any) -> None:
    """`connection_created` receiver: SQLite connections learn `studiolo_like()`."""
    if connection.vendor == "sqlite":
        raw: sqlite3.Connection = connection.connection
        raw.create_function(SQLITE_FUNCTION, 3, _sqlite_like, deterministic=True)


class Like(Lookup):
    """`Like(F("name"), "base%")` in a filter: the value matches the LIKE pattern."""

    lookup_name = "studiolo_like"
    case_insensitive = False

    def get_prep_lookup(self) -> Value:
        return Value(canonical_pattern(str(self.rhs)))

    def as_sql(self, compiler: SQLCompiler, connection: BaseDatabaseWrapper) -> _AsSqlType:
        lhs, lhs_params = self.process_lhs(compiler, connection)
        rhs, rhs_params = self.process_rhs(compiler, connection)
        params = (*lhs_params, *rhs_params)
        if connection.vendor == "postgresql":
            operator = "ILIKE" if self.case_insensitive else "LIKE"
            return f"{lhs} {operator} {rhs} ESCAPE '{ESCAPE}'", params
        if connection.vendor == "sqlite":
            flag = int(self.case_insensitive)
            return f"{SQLITE_FUNCTION}({lhs}, {rhs}, {flag})", params
        raise NotSupportedError(f"LIKE searches are not implemented on {connection.vendor}")


class ILike(Like):
    lookup_name = "studiolo_ilike"
    case_insensitive = True
