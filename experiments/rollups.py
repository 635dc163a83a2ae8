"""Multi-resolution rollups of metric series: how a chart of a million points is drawn from
a few thousand rows.

The step axis is cut by a fixed grid per level: at level `l` a cell holds the steps
`[b * 4**l, (b + 1) * 4**l)` (`b = step >> 2l`, floor division, negative steps included).
For every run, key and level, each cell that holds points has one `MetricRollup` row: count,
NaN count, first and last step, the latest point, and the lowest and highest points (value,
step, timestamp). Levels FIRST_LEVEL..LAST_LEVEL are kept: cells of 16 to 1,048,576 steps.

Why this shape (numbers in docs/experiments.md, "At scale"):
- A fixed grid makes the rollups incremental and order-free: a batch folds its points into
  cells in Python and merges them into the stored cells with one `INSERT ... ON CONFLICT DO
  UPDATE` whose SQL combines counts, extremes and latest values, in the same transaction as
  the points. Out-of-order steps, concurrent batches and late points need nothing special.
- Factor 4 between levels: a read asking for N buckets picks the coarsest level whose cells
  are no wider than a bucket, so it reads between N and 4N cells (about N / 4 would miss
  buckets; a factor 16 would read up to 16N).
- Cells of 16 steps at the finest level: a batch of 1,000 consecutive steps of one key
  writes about 90 cells over the 9 levels; a finer first level would cost more writes for
  the rare zoom narrower than 16 steps a bucket, which reads the points themselves (at most
  16 points a bucket).
- Cells of 4**10 steps at the top: coarser cells would only serve series whose steps span
  more than a billion (timestamps used as steps); those read more top-level cells, never
  more than they have points.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, NamedTuple

FIRST_LEVEL = 2  # cells of 16 steps
LAST_LEVEL = 10  # cells of 1,048,576 steps
LEVELS = range(FIRST_LEVEL, LAST_LEVEL + 1)

# A cell while it is folded: a list indexed by these (fast to update in place).
COUNT, NANS, FIRST, LAST_STEP, LAST_TIME, LAST_VALUE = range(6)
MIN_VALUE, MIN_STEP, MIN_TIME, MAX_VALUE, MAX_STEP, MAX_TIME = range(6, 12)

# The columns of MetricRollup after (run_id, key, level, bucket), in cell order.
CELL_COLUMNS = (
    "count",
    "nan_count",
    "first_step",
    "last_step",
    "last_timestamp",
    "last_value",
    "min_value",
    "min_step",
    "min_timestamp",
    "max_value",
    "max_step",
    "max_timestamp",
)


def cell_steps(level: int) -> int:
    return 1 << (2 * level)


def level_for(width: int) -> int | None:
    """The coarsest level whose cells are at most `width` steps wide (capped at the top
    level); None when even the finest cells are wider (read the points)."""
    if width < cell_steps(FIRST_LEVEL):
        return None
    return min((width.bit_length() - 1) // 2, LAST_LEVEL)


def fold_cells(points: Iterable[tuple[int, float | None, int, int]]) -> dict[int, list[Any]]:
    """(cell, value, step, timestamp) points into cells (lists in the order above), NaN as
    NaN or None. The hot loop of the write path and of reads that group points: plain
    comparisons on a list per cell, no objects per point."""
    cells: dict[int, list[Any]] = {}
    for bucket, value, step, timestamp in points:
        finite = value is not None and value == value  # NaN is the only value unequal to itself
        cell = cells.get(bucket)
        if cell is None:
            if finite:
                cells[bucket] = [1, 0, step, step, timestamp, value,
                                 value, step, timestamp, value, step, timestamp]  # fmt: skip
            else:
                cells[bucket] = [1, 1, step, step, timestamp, None,
                                 None, None, None, None, None, None]  # fmt: skip
            continue
        cell[COUNT] += 1
        if step < cell[FIRST]:
            cell[FIRST] = step
        last = cell[LAST_STEP]
        if step > last or (
            step == last
            and (
                timestamp > cell[LAST_TIME]
                or (
                    timestamp == cell[LAST_TIME]
                    and finite
                    and (cell[LAST_VALUE] is None or value >= cell[LAST_VALUE])
                )
            )
        ):
            cell[LAST_STEP], cell[LAST_TIME] = step, timestamp
            cell[LAST_VALUE] = value if finite else None
        if not finite:
            cell[NANS] += 1
            continue
        low = cell[MIN_VALUE]
        if (
            low is None
            or value < low
            or (value == low and (step, timestamp) < (cell[MIN_STEP], cell[MIN_TIME]))
        ):
            cell[MIN_VALUE], cell[MIN_STEP], cell[MIN_TIME] = value, step, timestamp
        high = cell[MAX_VALUE]
        if (
            high is None
            or value > high
            or (value == high and (step, timestamp) < (cell[MAX_STEP], cell[MAX_TIME]))
        ):
            cell[MAX_VALUE], cell[MAX_STEP], cell[MAX_TIME] = value, step, timestamp
    return cells


def merge_cell(cell: list[Any], other: list[Any] | tuple[Any, ...]) -> None:
    """Fold `other` into `cell` (both in cell order): the rule the SQL merge also follows."""
    cell[COUNT] += other[COUNT]
    cell[NANS] += other[NANS]
    if other[FIRST] < cell[FIRST]:
        cell[FIRST] = other[FIRST]
    if other[LAST_STEP] > cell[LAST_STEP] or (
        other[LAST_STEP] == cell[LAST_STEP]
        and (
            other[LAST_TIME] > cell[LAST_TIME]
            or (
                other[LAST_TIME] == cell[LAST_TIME]
                and other[LAST_VALUE] is not None
                and (cell[LAST_VALUE] is None or other[LAST_VALUE] >= cell[LAST_VALUE])
            )
        )
    ):
        cell[LAST_STEP : LAST_VALUE + 1] = other[LAST_STEP : LAST_VALUE + 1]
    if other[MIN_VALUE] is not None and (
        cell[MIN_VALUE] is None
        or (other[MIN_VALUE], other[MIN_STEP], other[MIN_TIME])
        < (cell[MIN_VALUE], cell[MIN_STEP], cell[MIN_TIME])
    ):
        cell[MIN_VALUE : MIN_TIME + 1] = other[MIN_VALUE : MIN_TIME + 1]
    if other[MAX_VALUE] is not None and (
        cell[MAX_VALUE] is None
        or other[MAX_VALUE] > cell[MAX_VALUE]
        or (
            other[MAX_VALUE] == cell[MAX_VALUE]
            and (other[MAX_STEP], other[MAX_TIME]) < (cell[MAX_STEP], cell[MAX_TIME])
        )
    ):
        cell[MAX_VALUE : MAX_TIME + 1] = other[MAX_VALUE : MAX_TIME + 1]


class Arrival(NamedTuple):
    """One key's points of a batch in the order they were logged (`fold_batch`).

    `in_order`: each point comes after the one logged before it in both history orders
    (`selectors.HistoryOrder`): neither its step nor its timestamp is lower, and if both are
    equal, neither is its value (NaN counting as the 0 MLflow stores for it). Then the step
    order (step, timestamp, arrival) and MLflow's (timestamp, step, value, arrival) are both
    the order of arrival. Equal step and timestamp is the one case the value decides: the
    step order leaves such ties in arrival order, MLflow's sorts them by value."""

    first_step: int
    first_timestamp: int
    in_order: bool


def fold(points: Iterable[tuple[str, float, int, int]]) -> list[tuple[Any, ...]]:
    """(key, value, step, timestamp) points (NaN as NaN) into rows `(key, level, bucket,
    *cell)` for every level, sorted by key, level and bucket (the order in which concurrent
    writers lock them, so they cannot deadlock)."""
    return fold_batch(points)[0]


def fold_batch(
    points: Iterable[tuple[str, float, int, int]],
) -> tuple[list[tuple[Any, ...]], dict[str, Arrival]]:
    """`fold`, and per key how its points arrived (`Arrival`), checked on the same pass
    (what keeps `MetricSummary.in_step_order`)."""
    shift = 2 * FIRST_LEVEL
    by_key: dict[str, list[tuple[int, float, int, int]]] = {}
    out_of_order: set[str] = set()
    for key, value, step, timestamp in points:
        series = by_key.get(key)
        if series is None:
            series = by_key[key] = []
        else:
            # After the point before it in both orders (`Arrival`); NaN, the only value
            # unequal to itself, sorts as 0.
            _, last_value, last_step, last_time = series[-1]
            if (
                step < last_step
                or timestamp < last_time
                or (
                    step == last_step
                    and timestamp == last_time
                    and (0.0 if value != value else value)
                    < (0.0 if last_value != last_value else last_value)
                )
            ):
                out_of_order.add(key)
        series.append((step >> shift, value, step, timestamp))
    arrivals = {
        key: Arrival(series[0][2], series[0][3], key not in out_of_order)
        for key, series in by_key.items()
    }
    rows: list[tuple[Any, ...]] = []
    for key in sorted(by_key):
        cells = fold_cells(by_key[key])
        for level in LEVELS:
            if level > FIRST_LEVEL:
                # Each finer cell has been emitted as a tuple already: merging into it in
                # place is safe.
                coarser: dict[int, list[Any]] = {}
                for bucket, cell in cells.items():
                    target = coarser.get(bucket >> 2)
                    if target is None:
                        coarser[bucket >> 2] = cell
                    else:
                        merge_cell(target, cell)
                cells = coarser
            rows.extend((key, level, bucket, *cells[bucket]) for bucket in sorted(cells))
    return rows, arrivals


def totals(rows: Iterable[tuple[Any, ...]]) -> dict[str, list[Any]]:
    """Per key, the cell of all its points: the coarsest level's rows of `fold` merged
    (count, NaN count, latest point, lowest and highest points of the whole batch)."""
    merged: dict[str, list[Any]] = {}
    for key, level, _, *cell in rows:
        if level != LAST_LEVEL:
            continue
        if key in merged:
            merge_cell(merged[key], cell)
        else:
            merged[key] = cell
    return merged
