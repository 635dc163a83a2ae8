"""Metric rollups and the downsampled reads built on them, checked against a brute-force
computation over the points: random series with spikes, NaN and infinities, logged in
batches of several sizes with steps out of order, read whole and zoomed (ranges on and off
the cells' boundaries), at bucket widths on every side of the finest cells."""

from __future__ import annotations

import bisect
import itertools
import math
import random
import re
from collections.abc import Sequence
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test.utils import CaptureQueriesContext

from experiments import rollups
from experiments.models import MetricPoint, MetricRollup, Run
from experiments.selectors import MetricBucket, metric_history_sampled
from experiments.services import (
    MetricInput,
    experiment_create,
    metrics_log_batch,
    run_create,
    run_log_batch,
)
from experiments.services.logging import Point
from experiments.services.rollups import rollups_rebuild
from tests.experiments.conftest import api

pytestmark = pytest.mark.django_db

T0 = 1_700_000_000_000
V1 = "/api/v1"


# --- brute force -----------------------------------------------------------------------------


def _finite(value: float) -> bool:
    return not math.isnan(value)


def _latest_key(point: MetricInput) -> tuple[int, int, int, float]:
    finite = _finite(point.value)
    return (point.step, point.timestamp, int(finite), point.value if finite else 0.0)


def brute_cell(points: Sequence[MetricInput]) -> tuple[Any, ...]:
    """A cell computed from its points by definition, in `rollups` order (NaN as None)."""
    finite = [p for p in points if _finite(p.value)]
    low = min(finite, key=lambda p: (p.value, p.step, p.timestamp), default=None)
    high = min(finite, key=lambda p: (-p.value, p.step, p.timestamp), default=None)
    last = max(points, key=_latest_key)
    return (
        len(points),
        len(points) - len(finite),
        min(p.step for p in points),
        last.step,
        last.timestamp,
        last.value if _finite(last.value) else None,
        *((None,) * 3 if low is None else (low.value, low.step, low.timestamp)),
        *((None,) * 3 if high is None else (high.value, high.step, high.timestamp)),
    )


def brute_rollups(points: Sequence[MetricInput]) -> dict[tuple[int, int], tuple[Any, ...]]:
    cells: dict[tuple[int, int], list[MetricInput]] = {}
    for level in rollups.LEVELS:
        for point in points:
            cells.setdefault((level, point.step >> (2 * level)), []).append(point)
    return {where: brute_cell(group) for where, group in cells.items()}


def stored_rollups(run: Run, key: str) -> dict[tuple[int, int], tuple[Any, ...]]:
    rows = MetricRollup.objects.filter(run=run, key=key).values_list(
        "level", "bucket", *rollups.CELL_COLUMNS
    )
    return {(row[0], row[1]): tuple(row[2:]) for row in rows}


def random_series(
    rng: random.Random, n: int, *, key: str = "loss", step_gap: int = 3
) -> list[MetricInput]:
    """Steps with gaps and a few repeats (logged twice), values with spikes, NaN and ±inf."""
    points = []
    step = rng.randrange(-50, 50)
    for _ in range(n):
        step += rng.choice([1, 1, 1, 2, step_gap]) if rng.random() > 0.02 else 0
        roll = rng.random()
        if roll < 0.05:
            value = math.nan
        elif roll < 0.06:
            value = rng.choice([math.inf, -math.inf])
        elif roll < 0.08:
            value = rng.choice([1e6, -1e6]) * rng.random()  # spikes
        else:
            value = round(rng.gauss(0, 1), 2)  # rounded: equal values (ties) happen
        points.append(MetricInput(key, value, step, T0 + rng.randrange(0, 5)))
    return points


def log(run: Run, user: User, points: Sequence[MetricInput], batch: int) -> None:
    for start in range(0, len(points), batch):
        run_log_batch(run=run, actor=user, metrics=points[start : start + batch])


def check_buckets(
    buckets: Sequence[MetricBucket], points: Sequence[MetricInput], lo: int, hi: int
) -> None:
    """Buckets are disjoint step ranges in order; together they hold every point of [lo, hi];
    each one's figures are those of the points in its step range."""
    inside = sorted((p for p in points if lo <= p.step <= hi), key=lambda p: p.step)
    steps = [p.step for p in inside]
    assert sum(b.count for b in buckets) == len(inside)
    for before, after in itertools.pairwise(buckets):
        assert before.step_last < after.step_first
    for bucket in buckets:
        mine = inside[
            bisect.bisect_left(steps, bucket.step_first) : bisect.bisect_right(
                steps, bucket.step_last
            )
        ]
        expected = brute_cell(mine)
        assert (bucket.count, bucket.nan_count, bucket.step_first, bucket.step_last) == (
            expected[: rollups.LAST_STEP + 1]
        )
        for point, value in ((bucket.min, expected[6]), (bucket.max, expected[9])):
            if value is None:
                assert point is None
                continue
            assert point is not None
            assert point.value == value
            # Among cells with equal extremes SQLite may keep any; PostgreSQL the earliest.
            assert MetricInput("loss", value, point.step, point.timestamp) in mine
        assert tuple(bucket.last) == (expected[3], expected[5], expected[4])


# --- the fixtures ----------------------------------------------------------------------------


@pytest.fixture
def rng(request: pytest.FixtureRequest) -> random.Random:
    return random.Random(request.node.name)


# --- what is stored --------------------------------------------------------------------------


@pytest.mark.parametrize("batch", [1, 7, 100, 1000])
def test_rollups_equal_a_brute_force_fold_of_the_points_whatever_the_batches(
    run: Run, scientist: User, rng: random.Random, batch: int
) -> None:
    points = random_series(rng, 300 if batch == 1 else 3000)
    rng.shuffle(points)  # steps out of order, across and within batches
    log(run, scientist, points, batch)
    assert stored_rollups(run, "loss") == brute_rollups(points)


def test_each_key_has_its_own_rollups(run: Run, scientist: User, rng: random.Random) -> None:
    odd = "val loss/epoch:1.x-y"  # every character MLflow allows beside letters and digits
    loss = random_series(rng, 500, key=odd)
    acc = random_series(rng, 500, key="acc")
    mixed = [p for pair in zip(loss, acc, strict=True) for p in pair]
    log(run, scientist, mixed, 250)
    assert stored_rollups(run, odd) == brute_rollups(loss)
    assert stored_rollups(run, "acc") == brute_rollups(acc)


def test_job_log_metrics_are_rolled_up_too(run: Run) -> None:
    from datetime import UTC, datetime

    at = datetime(2026, 1, 1, tzinfo=UTC)
    points = [Point("loss", 1.0 / (i + 1), i, at) for i in range(40)]
    metrics_log_batch(run_id=run.pk, points=points)
    expected = [MetricInput("loss", p.value, p.step, int(at.timestamp() * 1000)) for p in points]
    assert stored_rollups(run, "loss") == brute_rollups(expected)


def test_job_log_metrics_of_a_run_that_is_gone_are_not_written(run: Run) -> None:
    """Points have no database foreign key: the run's row lock stands in for it."""
    from datetime import UTC, datetime

    gone = run.pk
    run.delete()
    at = datetime(2026, 1, 1, tzinfo=UTC)
    assert metrics_log_batch(run_id=gone, points=[Point("loss", 1.0, 0, at)]) == 0
    assert not MetricPoint.objects.filter(run_id=gone).exists()
    assert not MetricRollup.objects.filter(run_id=gone).exists()


def test_a_rejected_batch_leaves_no_rollups(run: Run, scientist: User) -> None:
    from studio.errors import ValidationError

    with pytest.raises(ValidationError):
        run_log_batch(
            run=run,
            actor=scientist,
            metrics=[MetricInput("loss", 1.0, 1, T0), MetricInput("bad//key", 1.0, 2, T0)],
        )
    assert not MetricRollup.objects.filter(run=run).exists()


def test_a_rebuild_from_the_points_gives_the_same_rollups(
    run: Run, scientist: User, rng: random.Random
) -> None:
    points = random_series(rng, 2000)
    log(run, scientist, points, 1000)
    before = stored_rollups(run, "loss")
    MetricRollup.objects.filter(run=run).delete()
    assert rollups_rebuild(run_id=run.pk, key="loss") == 2000
    assert stored_rollups(run, "loss") == before


def test_deleting_a_run_deletes_its_rollups(run: Run, scientist: User, rng: random.Random) -> None:
    log(run, scientist, random_series(rng, 200), 100)
    other = run_create(experiment=run.experiment, name="other", actor=scientist)
    log(other, scientist, random_series(rng, 50), 100)
    run.delete()
    assert not MetricRollup.objects.filter(run_id=run.pk).exists()
    assert not MetricPoint.objects.filter(run_id=run.pk).exists()
    assert MetricRollup.objects.filter(run=other).exists()


def test_deleting_an_experiment_deletes_its_runs_rollups(
    run: Run, scientist: User, rng: random.Random
) -> None:
    log(run, scientist, random_series(rng, 200), 100)
    kept = experiment_create(team=run.experiment.team, name="kept", actor=scientist)
    other = run_create(experiment=kept, name="other", actor=scientist)
    log(other, scientist, random_series(rng, 50), 100)
    run.experiment.delete()
    assert list(MetricRollup.objects.values_list("run_id", flat=True).distinct()) == [other.pk]


# --- downsampled reads -----------------------------------------------------------------------


@pytest.fixture
def series(run: Run, scientist: User) -> list[MetricInput]:
    points = random_series(random.Random(7), 6000)
    shuffled = points[:]
    random.Random(8).shuffle(shuffled)
    log(run, scientist, shuffled, 1000)
    return points


def _range(points: Sequence[MetricInput]) -> tuple[int, int]:
    return min(p.step for p in points), max(p.step for p in points)


# Bucket counts that put the buckets below, at and above the finest cells (16 steps), and
# over the levels up to cells of 256 and 1,024 steps.
BUCKETS = [3, 10, 40, 180, 600, 1500]


@pytest.mark.parametrize("buckets", BUCKETS)
def test_the_whole_series_downsampled_matches_brute_force(
    run: Run, series: list[MetricInput], buckets: int
) -> None:
    sampled = metric_history_sampled(run_id=run.pk, key="loss", max_points=2 * buckets)
    assert sampled.sampled
    assert sampled.buckets is not None
    assert 0.9 * buckets <= len(sampled.buckets) <= buckets
    lo, hi = _range(series)
    check_buckets(sampled.buckets, series, lo, hi)


@pytest.mark.parametrize("buckets", BUCKETS)
@pytest.mark.parametrize(
    ("start", "end"),
    [
        (1024, 4095),  # on the boundaries of cells of every level up to 1,024 steps
        (1023, 4096),  # one step past them on both sides
        (1500, 9000),  # off every boundary
        (-1000, 2500),  # starts before the series
        (3000, 10**12),  # ends after it
        (777, 801),  # narrow: fits
    ],
)
def test_a_zoomed_range_matches_brute_force_and_holds_nothing_outside_it(
    run: Run, series: list[MetricInput], buckets: int, start: int, end: int
) -> None:
    sampled = metric_history_sampled(
        run_id=run.pk, key="loss", max_points=2 * buckets, step_min=start, step_max=end
    )
    inside = [p for p in series if start <= p.step <= end]
    if len(inside) <= 2 * buckets:
        assert not sampled.sampled
        assert [(p.step, p.timestamp) for p in sampled.points] == sorted(
            (p.step, p.timestamp) for p in inside
        )
        return
    assert sampled.buckets is not None
    assert len(sampled.buckets) <= buckets
    check_buckets(sampled.buckets, series, start, end)


def test_spikes_survive_and_the_points_are_the_buckets_extremes(
    run: Run, series: list[MetricInput]
) -> None:
    sampled = metric_history_sampled(run_id=run.pk, key="loss", max_points=100)
    assert sampled.buckets is not None
    finite = [p.value for p in series if _finite(p.value)]
    values = [p.value for p in sampled.points]
    assert min(values) == min(finite) == -math.inf
    assert max(values) == max(finite) == math.inf
    assert len(sampled.points) <= 100
    extremes = {b.min for b in sampled.buckets} | {b.max for b in sampled.buckets}
    assert set(sampled.points) == extremes - {None}
    assert [p.step for p in sampled.points] == sorted(p.step for p in sampled.points)


def test_a_series_of_only_nan_has_buckets_without_extremes(run: Run, scientist: User) -> None:
    log(run, scientist, [MetricInput("x", math.nan, i, T0) for i in range(100)], 100)
    sampled = metric_history_sampled(run_id=run.pk, key="x", max_points=10)
    assert sampled.points == []
    assert sampled.buckets is not None
    assert sum(b.nan_count for b in sampled.buckets) == 100
    assert all(b.min is None and b.max is None and b.last.value is None for b in sampled.buckets)


def test_a_million_points_at_one_step_are_one_bucket(run: Run, scientist: User) -> None:
    """MLflow's default step is 0: a series may have every point at one step."""
    log(run, scientist, [MetricInput("x", float(i % 7), 0, T0 + i) for i in range(3000)], 1000)
    sampled = metric_history_sampled(run_id=run.pk, key="x", max_points=20)
    assert sampled.buckets is not None
    [bucket] = sampled.buckets
    assert (bucket.count, bucket.min.value if bucket.min else None) == (3000, 0.0)
    assert (bucket.last.timestamp, bucket.last.value) == (T0 + 2999, 2999 % 7)


def test_an_unknown_key_is_an_empty_series(run: Run) -> None:
    sampled = metric_history_sampled(run_id=run.pk, key="nothing", max_points=10)
    assert (sampled.points, sampled.sampled) == ([], False)


@pytest.mark.parametrize(
    ("step_min", "step_max", "buckets"),
    [(None, None, 1000), (None, None, 40), (1500, 9000, 40), (1500, 9000, 1000), (50, 60, 2)],
)
def test_a_downsampled_read_costs_at_most_three_queries(
    run: Run, series: list[MetricInput], step_min: int | None, step_max: int | None, buckets: int
) -> None:
    with CaptureQueriesContext(connection) as queries:
        metric_history_sampled(
            run_id=run.pk,
            key="loss",
            max_points=2 * buckets,
            step_min=step_min,
            step_max=step_max,
        )
    assert len(queries.captured_queries) <= 3


def test_deciding_that_a_long_series_does_not_fit_walks_the_step_index_in_order(
    run: Run, series: list[MetricInput]
) -> None:
    """The count behind "does it fit?" orders by step before its LIMIT, so the database walks
    the (run, key, step) index and stops after max_points + 1 entries. Without the order,
    PostgreSQL expecting few rows (no statistics yet, or one long series among many short
    ones) reads the series' whole index range into a bitmap first: 0.4 s for a million
    points instead of 1 ms (benchmarks/run_page_render.py). A small table cannot show the
    plan, so this checks the query."""
    with CaptureQueriesContext(connection) as queries:
        metric_history_sampled(run_id=run.pk, key="loss", max_points=20)
    extent = queries.captured_queries[0]["sql"]
    bounded = extent.split("SELECT COUNT(*) FROM (", 1)[1]
    assert re.search(r"ORDER BY \S*step\S* (ASC )?LIMIT 21\b", bounded), bounded


def test_the_api_returns_the_buckets_when_asked(
    run: Run, scientist: User, series: list[MetricInput]
) -> None:
    url = f"{V1}/runs/{run.run_uuid}/metric-history"
    plain = api(scientist).get(url, {"key": "loss", "max_points": 40}).json()
    assert plain["sampled"] is True
    assert "buckets" not in plain
    body = api(scientist).get(url, {"key": "loss", "max_points": 40, "buckets": "true"}).json()
    assert body["points"] == plain["points"]
    assert 18 <= len(body["buckets"]) <= 20
    assert sum(b["count"] for b in body["buckets"]) == len(series)
    first = body["buckets"][0]
    assert set(first) == {"step_first", "step_last", "count", "nan_count", "min", "max", "last"}
    assert set(first["last"]) == {"step", "value", "timestamp"}
    values = [b["max"]["value"] for b in body["buckets"] if b["max"]]
    assert "Infinity" in values  # non-finite values as MLflow writes them
