"""Purging deleted runs and experiments for good, once the retention period has passed.

Deleting is a soft delete (restorable) for `TRACKING_RETENTION_DAYS`; after that the periodic
task `experiments.purge_expired` (studio/schedules.py) removes what was deleted: the run's
artifacts from the store, its metric points and then its metric rollups in bounded chunks
(each its own short transaction, so a run of millions of points and hundreds of thousands
of rollup cells never holds one long transaction or lock), then the run row, whose params,
tags, summaries and any other per-run rows go with it by cascade. An experiment goes once
all its runs have. Each purge is one audit event by `system`.

Safe against a restore racing the purge: a run or experiment past its retention can no
longer be restored (`retention_cutoff` is checked by the restore services in the same
conditional UPDATE), so once a purge has started nothing brings the object back. Kept even
when expired: runs that are the source of a registered model package (lineage; the package
protects the row) and runs that an app above this one still uses (a job still going: its log
writer records into the run), which that app registers at start-up as a condition on runs
(`busy_run_condition_register`, from its AppConfig.ready), since this app may not import it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from django.db import connection, models, transaction
from django.db.models import Q, QuerySet

from experiments.models import Experiment, Lifecycle, MetricPoint, MetricRollup, Run
from experiments.services.common import retention_cutoff
from experiments.services.runs import run_artifact_prefix
from studio.artifacts import get_store
from studio.audit.services import audit_record

POINTS_PER_CHUNK = 20_000  # metric points deleted per transaction
ROLLUPS_PER_CHUNK = 20_000  # metric rollup cells deleted per transaction
RUNS_PER_PASS = 200  # runs purged by one task run; the next pass takes the rest


@dataclass
class PurgeResult:
    runs: int = 0
    experiments: int = 0
    points: int = 0
    rollups: int = 0
    artifacts: int = 0
    kept: list[str] = field(default_factory=list)  # why expired objects stayed


# A condition on Run matching the runs an app still uses (evaluated at each pass).
BusyRunCondition = Callable[[], Q]

_busy_run_conditions: dict[str, BusyRunCondition] = {}


def busy_run_condition_register(name: str, condition: BusyRunCondition) -> None:
    """Register (or replace, when the app is set up again) the condition called `name`:
    expired runs it matches are kept until it no longer does."""
    _busy_run_conditions[name] = condition


def _still_in_use() -> Q:
    busy: Q | None = None
    for condition in _busy_run_conditions.values():
        busy = condition() if busy is None else busy | condition()
    return Q(pk__in=[]) if busy is None else busy  # nothing registered: no run is busy


def _protected() -> Q:
    """Runs that rows of other apps protect from deletion (a model package's source run),
    found from the model's relations so that this app need not import those apps."""
    condition = Q(pk__in=[])
    for relation in Run._meta.get_fields(include_hidden=True):
        if relation.auto_created and not relation.concrete:
            on_delete = getattr(relation, "on_delete", None)
            if on_delete is models.PROTECT:
                column = relation.field.attname  # type: ignore[union-attr]
                referencing = relation.related_model._base_manager.filter(  # type: ignore[union-attr]
                    **{f"{column}__isnull": False}  # NOT IN over a NULL would exclude everything
                ).values(column)
                condition |= Q(pk__in=referencing)
    return condition


def expired_runs(cutoff: datetime) -> QuerySet[Run]:
    """Deleted runs past retention (alone, or with their experiment) that may go."""
    return (
        Run.objects.filter(lifecycle=Lifecycle.DELETED, deleted_at__lte=cutoff)
        .exclude(_protected())
        .exclude(_still_in_use())
        .order_by("deleted_at", "pk")
    )


def purge_expired(
    *,
    now: datetime | None = None,
    max_runs: int = RUNS_PER_PASS,
    points_per_chunk: int = POINTS_PER_CHUNK,
    rollups_per_chunk: int = ROLLUPS_PER_CHUNK,
) -> PurgeResult:
    """One pass of the periodic purge: up to `max_runs` expired runs, then every expired
    experiment left without runs."""
    cutoff = retention_cutoff(now)
    result = PurgeResult()
    for run_id in list(expired_runs(cutoff).values_list("pk", flat=True)[:max_runs]):
        run_purge(
            run_id=run_id,
            cutoff=cutoff,
            points_per_chunk=points_per_chunk,
            rollups_per_chunk=rollups_per_chunk,
            result=result,
        )
    expired = Experiment.objects.filter(lifecycle=Lifecycle.DELETED, deleted_at__lte=cutoff)
    for experiment in expired.select_related("team").order_by("deleted_at", "pk"):
        left = experiment.runs.count()
        if left:
            result.kept.append(f"experiment {experiment.pk}: {left} run(s) not purged yet")
            continue
        experiment_purge(experiment=experiment, cutoff=cutoff, result=result)
    return result


def _delete_in_chunks(model: type[MetricPoint | MetricRollup], run_id: int, size: int) -> int:
    """Delete the run's rows of `model` a bounded DELETE at a time, each statement its own
    transaction (the purge runs in autocommit). Points and rollups have no foreign key to runs
    in the database (see their models): nothing but the ORM's cascade, all at once, would
    delete them otherwise.

    Each chunk is found through the index that leads with the run ((run, key, step) for
    points, the primary key for rollups) and deleted without reading the rest of the table.
    The ORM's `pk IN (SELECT pk ... LIMIT n)` does not manage that everywhere: PostgreSQL
    plans it as a hash semi-join over a sequential scan of the whole table (1.5 s a chunk
    with 2,000,000 points in the table, against 0.07 s by `ctid`), and SQLite, given the
    rollups' composite key with the run inside the row value, scans all of the run's cells
    for every chunk (with the run fixed apart, it seeks each cell by its key).
    """
    table = connection.ops.quote_name(model._meta.db_table)
    limit = int(size)
    params: list[int] = [run_id]
    if connection.vendor == "postgresql":
        sql = (
            f"DELETE FROM {table} WHERE ctid = ANY(ARRAY("  # noqa: S608 - the model's own quoted table; the run's id is a parameter
            f"SELECT ctid FROM {table} WHERE run_id = %s LIMIT {limit}))"
        )
    elif model is MetricRollup:  # SQLite, a WITHOUT ROWID table (migration 0005)
        cell = ", ".join(map(connection.ops.quote_name, ("key", "level", "bucket")))
        sql = (
            f"DELETE FROM {table} WHERE run_id = %s AND ({cell}) IN ("  # noqa: S608 - as above
            f"SELECT {cell} FROM {table} WHERE run_id = %s LIMIT {limit})"
        )
        params.append(run_id)
    else:
        sql = (
            f"DELETE FROM {table} WHERE id IN ("  # noqa: S608 - as above
            f"SELECT id FROM {table} WHERE run_id = %s LIMIT {limit})"
        )
    total = 0
    while True:
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            deleted: int = cursor.rowcount
        total += deleted
        if deleted < limit:
            return total


def run_purge(
    *,
    run_id: int,
    cutoff: datetime,
    points_per_chunk: int = POINTS_PER_CHUNK,
    rollups_per_chunk: int = ROLLUPS_PER_CHUNK,
    result: PurgeResult,
) -> bool:
    """Purge one deleted run past retention; False when it no longer qualifies."""
    run = expired_runs(cutoff).select_related("experiment__team").filter(pk=run_id).first()
    if run is None:
        return False
    # Slow I/O first, outside any transaction. Nothing writes here any more: deleted runs
    # take no artifacts, and this one can no longer be restored.
    artifacts = get_store().delete_prefix(run_artifact_prefix(run))
    points = _delete_in_chunks(MetricPoint, run.pk, points_per_chunk)
    rollups = _delete_in_chunks(MetricRollup, run.pk, rollups_per_chunk)
    with transaction.atomic():
        # The row lock makes a concurrent reference to the run (a package registered from
        # it) wait for this transaction; then the run must still qualify.
        Run.objects.select_for_update().filter(pk=run.pk).first()
        if not expired_runs(cutoff).filter(pk=run.pk).exists():
            result.kept.append(f"run {run.run_uuid}: became protected while purging")
            return False
        # Cascades take params, tags, summaries and any other per-run rows (points and
        # rollups are gone already: their cascade deletes nothing); a job keeps its record
        # but loses the link (SET_NULL).
        Run.objects.filter(pk=run.pk).delete()
        audit_record(
            actor=None,
            action="run.purged",
            target=run,
            object_id=run.run_uuid,
            team=run.experiment.team,
            details={
                "experiment": run.experiment.name,
                "deleted_at": run.deleted_at.isoformat() if run.deleted_at else None,
                "metric_points": points,
                "metric_rollups": rollups,
                "artifacts": artifacts,
            },
        )
    result.runs += 1
    result.points += points
    result.rollups += rollups
    result.artifacts += artifacts
    return True


def experiment_purge(*, experiment: Experiment, cutoff: datetime, result: PurgeResult) -> bool:
    """Purge a deleted experiment past retention that has no runs left."""
    team = experiment.team
    artifacts = get_store().delete_prefix(f"teams/{team.slug}/experiments/{experiment.pk}")
    with transaction.atomic():
        current = (
            Experiment.objects.select_for_update()
            .filter(pk=experiment.pk, lifecycle=Lifecycle.DELETED, deleted_at__lte=cutoff)
            .first()
        )
        if current is None or Run.objects.filter(experiment_id=experiment.pk).exists():
            return False
        current.delete()  # its tags by cascade; the name is free again
        audit_record(
            actor=None,
            action="experiment.purged",
            target=experiment,
            object_id=experiment.pk,
            team=team,
            details={
                "name": experiment.name,
                "deleted_at": experiment.deleted_at.isoformat() if experiment.deleted_at else None,
                "artifacts": artifacts,
            },
        )
    result.experiments += 1
    result.artifacts += artifacts
    return True
