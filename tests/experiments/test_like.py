"""LIKE and ILIKE of the search syntax: MLflow's meaning (`%`, `_`, backslash escapes, case),
checked against a brute-force reference, the same answers from both databases, and work
that grows with the value times the pattern, never exponentially."""

from __future__ import annotations

import functools
import time

import pytest
from django.contrib.auth.models import User
from django.db.models import F
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from experiments.like import ILike, Like, canonical_pattern, like
from experiments.models import Experiment, Run
from experiments.services import run_create


def reference_like(value: str, pattern: str, *, case_insensitive: bool) -> bool:
    """SQL LIKE by its definition: every way to cut the value, tried (memoised)."""
    tokens: list[tuple[str, str]] = []
    chars = iter(pattern)
    for char in chars:
        if char == "\\":
            tokens.append(("literal", next(chars, "\\")))
        elif char in "%_":
            tokens.append((char, ""))
        else:
            tokens.append(("literal", char))

    def same(a: str, b: str) -> bool:
        return a == b or (case_insensitive and a.lower() == b.lower())

    @functools.cache
    def match(i: int, j: int) -> bool:
        if j == len(tokens):
            return i == len(value)
        kind, char = tokens[j]
        if kind == "%":
            return any(match(k, j + 1) for k in range(i, len(value) + 1))
        if i == len(value):
            return False
        return (kind == "_" or same(char, value[i])) and match(i + 1, j + 1)

    return match(0, 0)


PATTERNS = st.text(alphabet="aAb%_\\éÉ", max_size=12)
VALUES = st.text(alphabet="aAb%_\\éÉ\n", max_size=14)


@given(value=VALUES, pattern=PATTERNS, case_insensitive=st.booleans())
@example(value="a%b", pattern="a\\%b", case_insensitive=False)
@example(value="axb", pattern="a\\%b", case_insensitive=False)
@example(value="a\\", pattern="a\\", case_insensitive=False)
@example(value="x\ny", pattern="x_y", case_insensitive=False)
@example(value="Éb", pattern="é%", case_insensitive=True)
@settings(max_examples=3000, deadline=None)
def test_like_agrees_with_the_brute_force_reference(
    value: str, pattern: str, case_insensitive: bool
) -> None:
    expected = reference_like(value, pattern, case_insensitive=case_insensitive)
    assert like(value, pattern, case_insensitive=case_insensitive) is expected
    # What the database is given means the same.
    rewritten = canonical_pattern(pattern)
    assert like(value, rewritten, case_insensitive=case_insensitive) is expected


def test_escapes_wildcards_and_case() -> None:
    assert like("100%", "100\\%")
    assert not like("1000", "100\\%")
    assert like("a_b", "a\\_b")
    assert not like("axb", "a\\_b")
    assert like("a\\b", "a\\\\b")
    assert like("CNN", "cnn", case_insensitive=True)
    assert not like("CNN", "cnn")
    assert like("", "%")
    assert not like("", "_")


@pytest.mark.parametrize(
    "pattern",
    [
        "%a" * 250 + "%b",  # regex `.*a.*a...b`: exponential backtracking
        "%" + "_a" * 250 + "b%",  # one long segment with `_`
        "%_" + "a" * 498 + "b%",
        ("%" + "a" * 20) * 24 + "%b",
    ],
)
@pytest.mark.parametrize("case_insensitive", [False, True])
def test_a_worst_case_pattern_costs_milliseconds(pattern: str, case_insensitive: bool) -> None:
    value = "a" * 8000  # longer than any tag value (8,000 characters)
    started = time.perf_counter()
    assert not like(value, pattern, case_insensitive=case_insensitive)
    # O(value x pattern): about 20 ms here; the regex it replaces never finished.
    assert time.perf_counter() - started < 0.5


NAMES = [
    "a",
    "A",
    "ab",
    "aB",
    "a%b",
    "a_b",
    "a\\b",
    "axb",
    "b\nA",
    "%",
    "_",
    "\\",
    "aaab",
    "AAAb",
]


@pytest.fixture
def named_runs(experiment: Experiment, scientist: User) -> Experiment:
    for name in NAMES:
        run_create(experiment=experiment, name=name, actor=scientist)
    return experiment


@pytest.mark.django_db
@given(pattern=st.text(alphabet="aAb%_\\\n", max_size=8), case_insensitive=st.booleans())
@example(pattern="a\\%b", case_insensitive=False)
@example(pattern="%\\", case_insensitive=False)
@example(pattern="A_B", case_insensitive=True)
@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_the_database_matches_as_the_matcher_does(
    named_runs: Experiment, pattern: str, case_insensitive: bool
) -> None:
    """PostgreSQL's own LIKE/ILIKE, or SQLite's `studiolo_like`, pick the same runs."""
    runs = Run.objects.filter(experiment=named_runs)
    assert sorted(runs.values_list("name", flat=True)) == sorted(NAMES)
    lookup = ILike if case_insensitive else Like
    found = runs.filter(lookup(F("name"), pattern)).values_list("name", flat=True)
    expected = [n for n in NAMES if like(n, pattern, case_insensitive=case_insensitive)]
    assert sorted(found) == sorted(expected)
