"""Downsampled reads of one metric series, from the rollups (`experiments.rollups`).

A read asks for at most N buckets over a step range (the whole series, or the visible range
of a zoomed chart). It costs at most three queries, none of which reads more than about 4N
rollup cells or 16N steps of points, however long the series:

1. The range's first and last steps (two index probes) and whether it holds more than
   `max_points` points (a count that stops there). A range that fits is returned whole.
2. The cells of the coarsest level no wider than a bucket (N to 4N of them), merged into
   N buckets by one GROUP BY in SQL. When buckets are narrower than the finest cells (16
   steps), the range's points (fewer than 16N steps) are folded into buckets instead, in
   Python by the write path's own fold.
3. For a zoomed range, the two cells cut by its edges also hold points outside it: those
   two partial cells are folded from the points of the range (less than a bucket each).

Each bucket keeps its step range, count, NaN count, lowest and highest point and latest
point, all real points of the series: spikes survive. Among equal values the earliest step
(then time) is kept, as in the rollups; PostgreSQL merges cells with
`MIN(ARRAY[value, step, time])` (exact steps below 2**53). SQLite takes the bare columns of
the row of a single `MIN()`/`MAX()` (one query per extreme, in one statement), so among
cells with equal extremes it keeps any of them.

Reads see the rollups as committed: a batch committed between two of the queries may show
in one and not the other (a live chart's next redraw catches up).
"""

from __future__ import annotations

from dataclasses import dataclass
from operator import itemgetter
from typing import Any, NamedTuple

from django.db import connection

from experiments import rollups
from experiments.models import MetricPoint, MetricRollup


class HistoryPoint(NamedTuple):
    # Named tuples rather than dataclasses: a chart's read makes thousands of these.
    step: int
    value: float | None  # None is NaN
    timestamp: int


@dataclass(slots=True)
class MetricBucket:
    """A run of consecutive steps of one series, summarised (a read's result: not frozen,
    which would make each of a read's thousands of buckets several times slower to make)."""

    step_first: int  # the first and last steps that hold points
    step_last: int
    count: int  # points, NaN included
    nan_count: int
    min: HistoryPoint | None  # the lowest non-NaN point; None when all were NaN
    max: HistoryPoint | None
    last: HistoryPoint  # the latest point (greatest step, then time, then value)


@dataclass(frozen=True)
class SampledHistory:
    """`buckets` is None when the range fits in `max_points`: `points` are then all of its
    points. Otherwise `points` are the buckets' lowest and highest points in step order (NaN
    left out), at most `max_points` of them."""

    points: list[HistoryPoint]
    buckets: list[MetricBucket] | None

    @property
    def sampled(self) -> bool:
        return self.buckets is not None


def sampled_history(
    *,
    run_id: int,
    key: str,
    max_points: int,
    step_min: int | None = None,
    step_max: int | None = None,
) -> SampledHistory:
    lo, hi, fits = _extent(run_id, key, step_min, step_max, max_points)
    if lo is None or hi is None:
        return SampledHistory([], None)
    if fits:
        return SampledHistory(_points(run_id, key, lo, hi), None)
    buckets = _buckets(
        run_id,
        key,
        lo,
        hi,
        max(1, max_points // 2),
        cut_low=step_min is not None,
        cut_high=step_max is not None,
    )
    kept = {p for bucket in buckets for p in (bucket.min, bucket.max) if p is not None}
    return SampledHistory(sorted(kept, key=itemgetter(0, 2)), buckets)  # step, then time


# --- queries ------------------------------------------------------------------------------------

_quote = connection.ops.quote_name
POINTS = MetricPoint._meta.db_table
ROLLUPS = MetricRollup._meta.db_table


def _series_where(step_min: int | None, step_max: int | None) -> tuple[str, list[Any]]:
    where = f"run_id = %s AND {_quote('key')} = %s"
    params: list[Any] = []
    if step_min is not None:
        where += " AND step >= %s"
        params.append(step_min)
    if step_max is not None:
        where += " AND step <= %s"
        params.append(step_max)
    return where, params


def _extent(
    run_id: int, key: str, step_min: int | None, step_max: int | None, max_points: int
) -> tuple[int | None, int | None, bool]:
    """First and last steps in the range, and whether it holds at most `max_points` points.
    Each subquery is an index probe or a bounded index range (the count stops at
    max_points + 1): none grows with the series.

    The count walks the (run, key, step) index in step order: without the ORDER BY,
    PostgreSQL may read the series' whole index range into a bitmap before the LIMIT applies
    (its choice when it expects few rows: no statistics yet, or a large series among many
    small ones), 0.4 s for a million points instead of 1 ms."""
    where, extra = _series_where(step_min, step_max)
    table = _quote(POINTS)
    sql = (
        f"SELECT (SELECT MIN(step) FROM {table} WHERE {where}), "  # noqa: S608 - identifiers are the model's own, quoted; values are parameters
        f"(SELECT MAX(step) FROM {table} WHERE {where}), "
        f"(SELECT COUNT(*) FROM (SELECT 1 FROM {table} WHERE {where} ORDER BY step LIMIT %s)"
        " AS bounded)"
    )
    params = [run_id, key, *extra] * 3 + [max_points + 1]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        lo, hi, count = cursor.fetchone()
    return lo, hi, int(count) <= max_points


def _points(run_id: int, key: str, lo: int, hi: int) -> list[HistoryPoint]:
    rows = (
        MetricPoint.objects.filter(run_id=run_id, key=key, step__gte=lo, step__lte=hi)
        .order_by("step", "timestamp", "id")
        .values_list("step", "value", "timestamp")
    )
    return [HistoryPoint(s, v, t) for s, v, t in rows]


def _buckets(
    run_id: int, key: str, lo: int, hi: int, wanted: int, *, cut_low: bool, cut_high: bool
) -> list[MetricBucket]:
    """At most `wanted` buckets over the points of [lo, hi] (both hold points). `cut_low`
    and `cut_high`: the range was cut there, so points may lie just outside it."""
    span = hi - lo + 1
    level = rollups.level_for(-(-span // wanted))
    if level is None:
        # Buckets narrower than the finest cells: fold the points (under 16 steps a bucket).
        return _finish(
            _fold(run_id, key, [(lo, hi)], ("(step - %s) * %s / %s", [lo, wanted, span]))
        )
    shift = 2 * level
    first, last = lo >> shift, hi >> shift
    cells = last - first + 1
    # Cells cut by the range's edges, folded from the points inside the range instead.
    low_cut = cut_low and lo != first << shift
    high_cut = cut_high and hi != ((last + 1) << shift) - 1
    if cells == 1 and (low_cut or high_cut):
        return _finish(_fold(run_id, key, [(lo, hi)], ("0", [])))
    inner = (first + low_cut, last - high_cut)
    found: dict[int, list[Any]] = {}
    if inner[0] <= inner[1]:
        found = _merge_cells(run_id, key, level, inner, first, wanted, cells)
    if low_cut or high_cut:
        # Both cut cells in one query: steps from the high one's start go to the last bucket.
        edges = []
        if low_cut:
            edges.append((lo, ((first + 1) << shift) - 1))
        if high_cut:
            edges.append((last << shift, hi))
        group = (
            "CASE WHEN step >= %s THEN %s ELSE 0 END",
            [last << shift, (cells - 1) * wanted // cells],
        )
        for bucket, cell in _fold(run_id, key, edges, group).items():
            if bucket in found:
                rollups.merge_cell(found[bucket], cell)
            else:
                found[bucket] = cell
    return _finish(found)


def _finish(found: dict[int, list[Any]]) -> list[MetricBucket]:
    buckets = []
    for index in sorted(found):
        (count, nans, first, last, last_time, last_value,
         low, low_step, low_time, high, high_step, high_time) = found[index]  # fmt: skip
        buckets.append(
            MetricBucket(
                first,
                last,
                count,
                nans,
                None if low is None else HistoryPoint(low_step, low, low_time),
                None if high is None else HistoryPoint(high_step, high, high_time),
                HistoryPoint(last, last_value, last_time),
            )
        )
    return buckets


# --- the queries ---------------------------------------------------------------------------------


def _fold(
    run_id: int, key: str, ranges: list[tuple[int, int]], group: tuple[str, list[Any]]
) -> dict[int, list[Any]]:
    """The points in the step ranges folded into cells by the group expression's value.
    Each range is its own index range scan (an OR of ranges would scan the whole series on
    SQLite)."""
    group_sql, group_params = group
    table = _quote(POINTS)
    scan = (
        f"SELECT {group_sql}, value, step, {_quote('timestamp')} FROM {table} "  # noqa: S608 - identifiers are the model's own, quoted; values are parameters
        f"WHERE run_id = %s AND {_quote('key')} = %s AND step BETWEEN %s AND %s"
    )
    params: list[Any] = []
    for lo, hi in ranges:
        params += [*group_params, run_id, key, lo, hi]
    with connection.cursor() as cursor:
        cursor.execute(" UNION ALL ".join([scan] * len(ranges)), params)
        return rollups.fold_cells(cursor.fetchall())


def _merge_cells(
    run_id: int,
    key: str,
    level: int,
    inner: tuple[int, int],
    first: int,
    wanted: int,
    cells: int,
) -> dict[int, list[Any]]:
    """The level's cells inner[0]..inner[1] merged into buckets: cell `c` goes to bucket
    `(c - first) * wanted / cells`, so consecutive cells share a bucket and the range's
    `cells` cells make `wanted` buckets (or as many as there are cells)."""
    table = _quote(ROLLUPS)
    rows = (
        f"SELECT (bucket - %s) * %s / %s AS b, * FROM {table} "  # noqa: S608 - identifiers are the model's own, quoted; values are parameters
        f"WHERE run_id = %s AND {_quote('key')} = %s AND level = %s AND bucket BETWEEN %s AND %s"
    )
    params: list[Any] = [first, wanted, cells, run_id, key, level, *inner]
    if connection.vendor == "postgresql":
        # min/max of arrays compare element by element: the lowest value, then the earliest
        # step and time (negated for the highest). The latest point: the greatest last step
        # (cells of a level hold disjoint steps, so it names one cell). The arrays' elements
        # go out as plain columns (cheaper to read than arrays), in `rollups` cell order.
        sql = (
            "SELECT b, n, nans, first_s, last_s, la[2]::int8, CASE WHEN la[3] = 1 THEN la[4] END, "  # noqa: S608 - identifiers are the model's own, quoted; values are parameters
            "lo[1], lo[2]::int8, lo[3]::int8, hi[1], (-hi[2])::int8, (-hi[3])::int8 FROM ("
            f"SELECT b, SUM({_quote('count')}) AS n, SUM(nan_count) AS nans, "
            "MIN(first_step) AS first_s, MAX(last_step) AS last_s, "
            "MIN(ARRAY[min_value, min_step::float8, min_timestamp::float8]) "
            "FILTER (WHERE min_value IS NOT NULL) AS lo, "
            "MAX(ARRAY[max_value, -max_step::float8, -max_timestamp::float8]) "
            "FILTER (WHERE max_value IS NOT NULL) AS hi, "
            "MAX(ARRAY[last_step::float8, last_timestamp::float8, "
            "CASE WHEN last_value IS NULL THEN 0 ELSE 1 END, COALESCE(last_value, 0)]) AS la "
            f"FROM ({rows}) AS r GROUP BY b) AS merged"
        )
        found: dict[int, list[Any]] = {}
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            for bucket, count, nans, *rest in cursor.fetchall():
                # SUM() of bigints is a numeric (a Decimal here).
                found[bucket] = [int(count), int(nans), *rest]
        return found
    # SQLite: with a single MIN() or MAX() in a query, the bare columns come from that row:
    # one query per extreme over the cells (read once: a CTE used four times is
    # materialized), in one statement.
    sql = (
        f"WITH r AS ({rows}) "  # noqa: S608 - identifiers are the model's own, quoted; values are parameters
        f"SELECT 0, b, SUM({_quote('count')}), SUM(nan_count), MIN(first_step), "
        "MAX(last_step) FROM r GROUP BY b UNION ALL "
        "SELECT 1, b, MIN(min_value), min_step, min_timestamp, NULL FROM r "
        "WHERE min_value IS NOT NULL GROUP BY b UNION ALL "
        "SELECT 2, b, MAX(max_value), max_step, max_timestamp, NULL FROM r "
        "WHERE max_value IS NOT NULL GROUP BY b UNION ALL "
        "SELECT 3, b, MAX(last_step), last_timestamp, last_value, NULL FROM r GROUP BY b"
    )
    found = {}
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        for part, bucket, a, b, c, d in cursor.fetchall():
            cell = found.get(bucket)
            if cell is None:
                cell = found[bucket] = [0, 0, 0, 0, 0, None, None, None, None, None, None, None]
            if part == 0:
                cell[rollups.COUNT : rollups.LAST_STEP + 1] = [a, b, c, d]
            elif part == 1:
                cell[rollups.MIN_VALUE : rollups.MIN_TIME + 1] = [a, b, c]
            elif part == 2:
                cell[rollups.MAX_VALUE : rollups.MAX_TIME + 1] = [a, b, c]
            else:
                cell[rollups.LAST_TIME], cell[rollups.LAST_VALUE] = b, c
    return found
