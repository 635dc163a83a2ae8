"""Searching runs by a param's value goes through the (key, value prefix) index and still
compares whole values: long values that share their first 200 characters stay apart."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test.utils import CaptureQueriesContext

from experiments.models import PARAM_INDEX_PREFIX, Experiment
from experiments.selectors import runs_search
from experiments.services import run_create, run_log_batch

pytestmark = pytest.mark.django_db

SHARED = "x" * PARAM_INDEX_PREFIX


@pytest.fixture
def runs(experiment: Experiment, scientist: User) -> dict[str, str]:
    """Run name → its `config` param: two long values alike up to the indexed prefix."""
    values = {"a": SHARED + "-first", "b": SHARED + "-second", "c": "0.01", "d": "0.1"}
    for name, value in values.items():
        run = run_create(experiment=experiment, name=name, actor=scientist)
        run_log_batch(run=run, actor=scientist, params=[("config", value), ("lr", value[-4:])])
    return values


def names(experiment: Experiment, user: User, filter_string: str) -> list[str]:
    page = runs_search(user, experiment_ids=[experiment.pk], filter_string=filter_string)
    return sorted(run.name for run in page.items)


def test_equality_on_long_values_compares_the_whole_value(
    experiment: Experiment, scientist: User, runs: dict[str, str]
) -> None:
    assert names(experiment, scientist, f"params.config = '{runs['a']}'") == ["a"]
    assert names(experiment, scientist, f"params.config = '{runs['b']}'") == ["b"]
    assert names(experiment, scientist, f"params.config = '{SHARED}'") == []
    assert names(experiment, scientist, "params.config = '0.01'") == ["c"]


def test_in_on_long_values_compares_the_whole_value(
    experiment: Experiment, scientist: User, runs: dict[str, str]
) -> None:
    both = f"params.config IN ('{runs['b']}', '0.1')"
    assert names(experiment, scientist, both) == ["b", "d"]
    assert names(experiment, scientist, "params.config NOT IN ('0.1', '0.01')") == ["a", "b"]


def test_a_param_equality_filter_compares_the_indexed_prefix(
    experiment: Experiment, scientist: User, runs: dict[str, str]
) -> None:
    """The filter states the index's own expression, which is what lets the database use
    the index (the plan itself depends on the database's statistics)."""
    with CaptureQueriesContext(connection) as queries:
        names(experiment, scientist, "params.config = '0.01'")
    prefix = "LEFT(" if connection.vendor == "postgresql" else "SUBSTR("
    assert any(prefix in q["sql"].upper() for q in queries.captured_queries)
