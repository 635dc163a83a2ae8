"""Recording into runs: params, tags and metric points, in batches that commit whole or not
at all.

The write path for metric points builds no model objects: rows are plain tuples, written with
one COPY on PostgreSQL (executemany elsewhere), and the per-key summaries are folded in by a
single `INSERT ... ON CONFLICT DO UPDATE` whose SQL does the merge, so two batches racing on
one run and key cannot lose each other's count, min, max or latest value. The multi-resolution
rollups that downsampled reads use are merged the same way (`experiments.services.rollups`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from django.db import connection, transaction

from experiments import rollups
from experiments.events import announce_metrics, announce_metrics_by_id
from experiments.models import (
    Lifecycle,
    MetricPoint,
    MetricSummary,
    Run,
    RunParam,
    RunStatus,
    RunTag,
)
from experiments.services.common import Actor, require_tracking
from experiments.services.rollups import rollups_write
from experiments.validation import (
    INT64_MAX,
    INT64_MIN,
    MAX_PARAM_VALUE_LENGTH,
    MAX_TAG_VALUE_LENGTH,
    check_batch_limits,
    parse_int64,
    validate_key,
    validate_text,
)
from studio.errors import ValidationError


class MetricInput(NamedTuple):
    """One metric point as logged: value a double (NaN and infinities allowed), timestamp in
    milliseconds since the epoch."""

    key: str
    value: float
    step: int
    timestamp: int


@dataclass(frozen=True)
class Point:
    """A metric point recorded by the platform itself (metrics parsed from a job's log)."""

    key: str
    value: float
    step: int
    timestamp: datetime


@dataclass(frozen=True)
class BatchResult:
    metrics: int
    params: int
    tags: int


# --- validation ---------------------------------------------------------------------------


def _check_metrics(metrics: Sequence[MetricInput]) -> list[MetricInput]:
    # The common case (a known key, a float, plain in-range integers) is checked with a
    # few comparisons and keeps its tuple; keys repeat within a batch, so each is validated
    # once. Field names are only spelled out for an error.
    checked = []
    valid_keys: set[str] = set()
    for index, metric in enumerate(metrics):
        key, value, step, timestamp = metric
        if type(key) is not str or key not in valid_keys:
            valid_keys.add(validate_key(key, field=f"metrics[{index}].key"))
        if (
            type(value) is float
            and type(step) is int
            and type(timestamp) is int
            and INT64_MIN <= step <= INT64_MAX
            and 0 <= timestamp <= INT64_MAX
        ):
            checked.append(metric if type(metric) is MetricInput else MetricInput(*metric))
            continue
        field = f"metrics[{index}]"
        if type(value) is not float:
            if not isinstance(value, float | int) or isinstance(value, bool):
                raise ValidationError(
                    f"{field}.value: a number is required", field=f"{field}.value"
                )
            value = float(value)
        if type(step) is not int or not INT64_MIN <= step <= INT64_MAX:
            step = parse_int64(step, field=f"{field}.step")
        if type(timestamp) is not int or not 0 <= timestamp <= INT64_MAX:
            timestamp = parse_int64(timestamp, field=f"{field}.timestamp", minimum=0)
        checked.append(MetricInput(key, value, step, timestamp))
    return checked


def _check_params(params: Sequence[tuple[str, str]]) -> dict[str, str]:
    """Keys and values checked; a key twice in one batch must carry the same value."""
    checked: dict[str, str] = {}
    for index, (key, value) in enumerate(params):
        key = validate_key(key, field=f"params[{index}].key")
        if not isinstance(value, str):
            value = str(value)
        value = validate_text(value, field=f"params[{index}].value", limit=MAX_PARAM_VALUE_LENGTH)
        if key in checked and checked[key] != value:
            raise ValidationError(
                f"params[{index}]: parameter {key!r} appears twice with different values",
                field=f"params.{key}",
            )
        checked[key] = value
    return checked


def _check_tags(tags: Sequence[tuple[str, str]]) -> dict[str, str]:
    checked: dict[str, str] = {}
    for index, (key, value) in enumerate(tags):
        key = validate_key(key, field=f"tags[{index}].key")
        if not isinstance(value, str):
            value = str(value)
        checked[key] = validate_text(
            value, field=f"tags[{index}].value", limit=MAX_TAG_VALUE_LENGTH
        )
    return checked


def check_writable(run: Run, *, recording: bool) -> None:
    """Deleted runs take nothing; ended runs take tags but no more metrics, params or
    artifacts (`recording`): their record is closed."""
    if run.lifecycle != Lifecycle.ACTIVE:
        raise ValidationError(
            f"run: {run.run_uuid} is deleted; restore it before logging to it", field="run"
        )
    if recording and run.status != RunStatus.RUNNING:
        raise ValidationError(
            f"run: {run.run_uuid} is {run.status}; metrics, params and artifacts can only be "
            "logged to a RUNNING run (resume it by setting its status to RUNNING)",
            field="run",
        )


# --- the batch service --------------------------------------------------------------------


def run_log_batch(
    *,
    run: Run,
    actor: Actor,
    metrics: Sequence[MetricInput] = (),
    params: Sequence[tuple[str, str]] = (),
    tags: Sequence[tuple[str, str]] = (),
) -> BatchResult:
    """Log metrics, params and tags to a run: everything is checked first, then written in
    one transaction. A param already set with another value rejects the whole batch (400
    naming the key); the same value again is accepted."""
    require_tracking(actor=actor, experiment=run.experiment)
    check_batch_limits(metrics=len(metrics), params=len(params), tags=len(tags))
    checked_metrics = _check_metrics(metrics)
    checked_params = _check_params(params)
    checked_tags = _check_tags(tags)
    with transaction.atomic():
        # The row lock orders this batch after a concurrent status change or batch on the
        # same run: a run that has just ended takes nothing more, and param checks below
        # cannot race with another batch's inserts.
        locked = (
            Run.objects.select_for_update().only("status", "lifecycle", "run_uuid").get(pk=run.pk)
        )
        check_writable(locked, recording=bool(checked_metrics or checked_params))
        new_params = _params_to_insert(run, checked_params)
        RunParam.objects.bulk_create(
            RunParam(run_id=run.pk, key=k, value=v) for k, v in new_params.items()
        )
        _tags_upsert(run, checked_tags)
        _metrics_write(run.pk, checked_metrics)
        # Open run pages redraw (throttled per run, sent after commit).
        announce_metrics(run, {metric.key for metric in checked_metrics})
    return BatchResult(len(checked_metrics), len(checked_params), len(checked_tags))


def run_delete_tag(*, run: Run, actor: Actor, key: str) -> None:
    require_tracking(actor=actor, experiment=run.experiment)
    check_writable(run, recording=False)
    deleted, _ = RunTag.objects.filter(run=run, key=key).delete()
    if not deleted:
        from studio.errors import NotFound

        raise NotFound(f"tag {key!r} not found on run {run.run_uuid}", field="key")


def metrics_log_batch(*, run_id: int, points: Sequence[Point]) -> int:
    """Record points parsed by the platform (a job's log metrics). No permission check and no
    status check: the job's own log writer is trusted, and may flush its last lines after
    the run has ended."""
    rows = [
        MetricInput(p.key, float(p.value), int(p.step), int(p.timestamp.timestamp() * 1000))
        for p in points
    ]
    if not rows:
        return 0
    with transaction.atomic():
        # The row lock stands in for a foreign key check per point (`MetricPoint.run`): the
        # run exists and stays until this batch commits. A run deleted meanwhile takes
        # nothing.
        if not Run.objects.select_for_update().filter(pk=run_id).exists():
            return 0
        _metrics_write(run_id, rows)
        announce_metrics_by_id(run_id, {row.key for row in rows})
    return len(rows)


# --- writing ------------------------------------------------------------------------------


def _params_to_insert(run: Run, params: Mapping[str, str]) -> dict[str, str]:
    if not params:
        return {}
    existing = dict(
        RunParam.objects.filter(run_id=run.pk, key__in=list(params)).values_list("key", "value")
    )
    for key, value in params.items():
        if key in existing and existing[key] != value:
            raise ValidationError(
                f"params.{key}: parameter {key!r} of run {run.run_uuid} is already set to "
                f"{existing[key][:100]!r}; parameters cannot be changed once logged "
                f"(tried {value[:100]!r})",
                field=f"params.{key}",
            )
    return {key: value for key, value in params.items() if key not in existing}


def _tags_upsert(run: Run, tags: Mapping[str, str]) -> None:
    if not tags:
        return
    existing = {t.key: t for t in RunTag.objects.filter(run_id=run.pk, key__in=list(tags))}
    changed = []
    for key, value in tags.items():
        if key in existing and existing[key].value != value:
            existing[key].value = value
            changed.append(existing[key])
    RunTag.objects.bulk_update(changed, ["value"])
    RunTag.objects.bulk_create(
        RunTag(run_id=run.pk, key=k, value=v) for k, v in tags.items() if k not in existing
    )


def _sql_value(value: float) -> float | None:
    return None if math.isnan(value) else value


def _metrics_write(run_id: int, metrics: Sequence[MetricInput]) -> None:
    """Append the points and fold them into the summaries and the rollups. Call inside a
    transaction that holds a lock on the run's row (the points have no foreign key
    constraint: the lock is what keeps them from outliving their run)."""
    if not metrics:
        return
    quote = connection.ops.quote_name
    points_table = quote(MetricPoint._meta.db_table)
    columns = f"(run_id, {quote('key')}, value, step, {quote('timestamp')})"
    rows = [(run_id, m.key, _sql_value(m.value), m.step, m.timestamp) for m in metrics]
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # COPY is the fastest way into PostgreSQL: one round trip, no per-row statement.
            with cursor.cursor.copy(f"COPY {points_table} {columns} FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        else:
            cursor.executemany(
                f"INSERT INTO {points_table} {columns} VALUES (%s, %s, %s, %s, %s)",  # noqa: S608 - the table is the model's own, quoted; values are parameters
                rows,
            )
        # The batch folded once: its rollup cells, and per key the whole batch's figures
        # (the coarsest cells merged) and how its points arrived, which are what the
        # summary needs.
        cells, arrivals = rollups.fold_batch(metrics)
        cursor.execute(*_summary_upsert(run_id, rollups.totals(cells), arrivals))
    rollups_write(run_id, cells)


def _summary_upsert(
    run_id: int, totals: Mapping[str, list[Any]], arrivals: Mapping[str, rollups.Arrival]
) -> tuple[str, list[Any]]:
    params: list[Any] = []
    # Sorted keys: concurrent batches lock summary rows in the same order (no deadlocks).
    for key in sorted(totals):
        cell = totals[key]
        arrival = arrivals[key]
        params += [
            run_id,
            key,
            cell[rollups.LAST_VALUE],
            cell[rollups.LAST_STEP],
            cell[rollups.LAST_TIME],
            cell[rollups.MIN_VALUE],
            cell[rollups.MAX_VALUE],
            cell[rollups.COUNT],
            arrival.in_order,
            arrival.first_step,
            arrival.first_timestamp,
        ]
    quote = connection.ops.quote_name
    table = quote(MetricSummary._meta.db_table)
    old = f"{table}."
    newer = (
        f"(excluded.last_step > {old}last_step OR (excluded.last_step = {old}last_step AND "
        f"(excluded.last_timestamp > {old}last_timestamp OR "
        f"(excluded.last_timestamp = {old}last_timestamp AND "
        f"COALESCE(excluded.last_value, -1e308) >= COALESCE({old}last_value, -1e308)))))"
    )
    # The series stays in step order (`MetricSummary.in_step_order`) if the batch is
    # (`rollups.Arrival`) and its first point has neither a lower step nor a lower timestamp
    # than the series' last one (greatest step, then timestamp: while the orders agree, it
    # has the greatest timestamp too), so that every point of the batch comes after every
    # point before it in both orders. A first point at the very step and timestamp of the
    # last one clears it: which of the two MLflow puts first depends on values the summary
    # does not keep (rare: one step logged twice in the same millisecond, two batches).
    # Racing batches merge one after the other (the upsert locks the row), each against the
    # row as the one before left it: two that interleave clear the flag in either order.
    in_step_order = (
        f"{old}in_step_order AND excluded.in_step_order "
        f"AND excluded.first_step >= {old}last_step "
        f"AND excluded.first_timestamp >= {old}last_timestamp "
        f"AND (excluded.first_step > {old}last_step "
        f"OR excluded.first_timestamp > {old}last_timestamp)"
    )
    values = ", ".join(["(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"] * len(totals))
    sql = (
        f"INSERT INTO {table} (run_id, {quote('key')}, last_value, last_step, last_timestamp, "  # noqa: S608 - identifiers are the model's own, quoted; values are parameters
        f"min_value, max_value, {quote('count')}, in_step_order, first_step, first_timestamp) "
        f"VALUES {values} "
        f"ON CONFLICT (run_id, {quote('key')}) DO UPDATE SET "
        f"last_value = CASE WHEN {newer} THEN excluded.last_value ELSE {old}last_value END, "
        f"last_step = CASE WHEN {newer} THEN excluded.last_step ELSE {old}last_step END, "
        f"last_timestamp = CASE WHEN {newer} THEN excluded.last_timestamp "
        f"ELSE {old}last_timestamp END, "
        f"min_value = CASE WHEN {old}min_value IS NULL OR excluded.min_value < {old}min_value "
        f"THEN COALESCE(excluded.min_value, {old}min_value) ELSE {old}min_value END, "
        f"max_value = CASE WHEN {old}max_value IS NULL OR excluded.max_value > {old}max_value "
        f"THEN COALESCE(excluded.max_value, {old}max_value) ELSE {old}max_value END, "
        f"{quote('count')} = {old}{quote('count')} + excluded.{quote('count')}, "
        f"in_step_order = {in_step_order}"
    )
    return sql, params
