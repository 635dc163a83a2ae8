"""Keeping the metric rollups (`experiments.rollups`) in step with the points.

`rollups_add` runs in the transaction that writes the points: the batch is folded into cells
in Python, then merged into the stored cells by `INSERT ... ON CONFLICT DO UPDATE` statements
whose SQL does the merge (as the summaries do), so concurrent batches on one series cannot
lose each other's counts or extremes. `rollups_rebuild` recomputes one series from its points
(installs that had points before the rollups existed; repairs).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable, Sequence
from typing import Any

from django.db import connection, transaction

from experiments import rollups
from experiments.models import MetricPoint, MetricRollup

# Rows per statement on SQLite: 16 parameters each stays below its 32,766 a statement.
ROWS_PER_STATEMENT = 1000
REBUILD_CHUNK = 50_000  # points read at a time by a rebuild


# PostgreSQL types of the cell columns after run_id, for the unnest() arrays.
_ARRAY_TYPES = ("text", "int2", "int8", "int8", "int8", "int8", "int8", "int8",
                "float8", "float8", "int8", "int8", "float8", "int8", "int8")  # fmt: skip


def _merge_sql() -> str:
    """`ON CONFLICT ... DO UPDATE`: the stored cell and the batch's merged as `merge_cell`
    does (counts add up; the lower minimum, higher maximum and newer latest point win, ties
    to the earlier step)."""
    quote = connection.ops.quote_name
    old = quote(MetricRollup._meta.db_table) + "."

    def new(column: str) -> str:
        return f"excluded.{quote(column)}"

    def cur(column: str) -> str:
        return f"{old}{quote(column)}"

    newer = (
        f"({new('last_step')} > {cur('last_step')} OR ({new('last_step')} = {cur('last_step')} "
        f"AND ({new('last_timestamp')} > {cur('last_timestamp')} OR "
        f"({new('last_timestamp')} = {cur('last_timestamp')} AND {new('last_value')} IS NOT NULL "
        f"AND ({cur('last_value')} IS NULL OR {new('last_value')} >= {cur('last_value')})))))"
    )

    def extreme(prefix: str, better: str) -> str:
        value, step, time = (f"{prefix}_value", f"{prefix}_step", f"{prefix}_timestamp")
        return (
            f"({new(value)} IS NOT NULL AND ({cur(value)} IS NULL OR {new(value)} {better} "
            f"{cur(value)} OR ({new(value)} = {cur(value)} AND ({new(step)} < {cur(step)} OR "
            f"({new(step)} = {cur(step)} AND {new(time)} < {cur(time)})))))"
        )

    def pick(condition: str, *names: str) -> list[str]:
        return [
            f"{quote(name)} = CASE WHEN {condition} THEN {new(name)} ELSE {cur(name)} END"
            for name in names
        ]

    updates = [
        f"{quote('count')} = {cur('count')} + {new('count')}",
        f"nan_count = {cur('nan_count')} + {new('nan_count')}",
        *pick(f"{new('first_step')} < {cur('first_step')}", "first_step"),
        *pick(newer, "last_step", "last_timestamp", "last_value"),
        *pick(extreme("min", "<"), "min_value", "min_step", "min_timestamp"),
        *pick(extreme("max", ">"), "max_value", "max_step", "max_timestamp"),
    ]
    return (
        f" ON CONFLICT (run_id, {quote('key')}, level, bucket) DO UPDATE SET {', '.join(updates)}"
    )


def _columns() -> str:
    quote = connection.ops.quote_name
    columns = ["run_id", quote("key"), "level", "bucket", *map(quote, rollups.CELL_COLUMNS)]
    return ", ".join(columns)


@functools.cache
def _upsert_values_sql(vendor: str, rows: int) -> str:
    placeholders = "(" + ", ".join(["%s"] * (4 + len(rollups.CELL_COLUMNS))) + ")"
    table = connection.ops.quote_name(MetricRollup._meta.db_table)
    return (
        f"INSERT INTO {table} ({_columns()}) VALUES {', '.join([placeholders] * rows)}"  # noqa: S608 - identifiers are the model's own, quoted; values are parameters
        + _merge_sql()
    )


@functools.cache
def _upsert_unnest_sql() -> str:
    # One array per column: the statement is the same text for any batch (psycopg parses
    # it once and caches it; a VALUES list of 1,500 parameters is re-parsed on every call,
    # which cost more than the insert itself).
    table = connection.ops.quote_name(MetricRollup._meta.db_table)
    arrays = ", ".join(f"%s::{kind}[]" for kind in _ARRAY_TYPES)
    return (
        f"INSERT INTO {table} ({_columns()}) SELECT %s, * FROM unnest({arrays})"  # noqa: S608 - identifiers are the model's own, quoted; values are parameters
        + _merge_sql()
    )


def _text_element(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _number_element(value: float | int | None) -> str:
    if value is None:
        return "NULL"
    if value in (math.inf, -math.inf):
        return "Infinity" if value > 0 else "-Infinity"
    return repr(value)  # an int's digits, or a float's shortest round-trip form


def _array_literals(rows: Sequence[tuple[Any, ...]]) -> list[str]:
    """Each column as a PostgreSQL array literal (`{1,2,NULL}`, `{"a","b"}`): one string
    per column is adapted at once, where psycopg adapts a Python list element by element
    (half the time of this upsert for a batch of 1,000 points)."""
    columns = list(zip(*rows, strict=True))
    literals = ["{" + ",".join(map(_text_element, columns[0])) + "}"]
    literals += ["{" + ",".join(map(_number_element, column)) + "}" for column in columns[1:]]
    return literals


def rollups_write(run_id: int, rows: Sequence[tuple[Any, ...]]) -> None:
    """Merge folded rows (`rollups.fold`) into the run's rollups. Call in the transaction
    that writes their points."""
    if not rows:
        return
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(_upsert_unnest_sql(), [run_id, *_array_literals(rows)])
            return
        for start in range(0, len(rows), ROWS_PER_STATEMENT):
            chunk = rows[start : start + ROWS_PER_STATEMENT]
            params: list[Any] = []
            for row in chunk:
                params.append(run_id)
                params.extend(row)
            cursor.execute(_upsert_values_sql(connection.vendor, len(chunk)), params)


def rollups_add(run_id: int, points: Iterable[tuple[str, float, int, int]]) -> None:
    """Fold (key, value, step, timestamp) points, NaN as NaN, into the run's rollups. Call in
    the transaction that writes the points."""
    rollups_write(run_id, rollups.fold(points))


def rollups_rebuild(*, run_id: int, key: str) -> int:
    """Recompute one series' rollups from its points; returns the number of points."""
    with transaction.atomic():
        MetricRollup.objects.filter(run_id=run_id, key=key).delete()
        points = (
            MetricPoint.objects.filter(run_id=run_id, key=key)
            .order_by("step", "id")
            .values_list("value", "step", "timestamp")
        )
        # The points are folded whole per cell before writing (a cell's rows are written
        # once), chunk by chunk in step order: a chunk's last cell may continue in the next
        # chunk, which the SQL merge folds in.
        total = 0
        chunk: list[tuple[str, float, int, int]] = []
        for value, step, timestamp in points.iterator(chunk_size=REBUILD_CHUNK):
            chunk.append((key, math.nan if value is None else value, step, timestamp))
            if len(chunk) == REBUILD_CHUNK:
                rollups_add(run_id, chunk)
                total += len(chunk)
                chunk = []
        if chunk:
            rollups_add(run_id, chunk)
            total += len(chunk)
    return total
