"""Experiments, runs and what runs record: parameters, tags, metric series and their summaries.

Times recorded by runs (start/end, metric timestamps) are integers of milliseconds since the
epoch, as MLflow has them: what a client logs comes back exactly, and writing a metric point
costs no datetime conversion. NaN metric values are stored as SQL NULL (SQLite has no NaN,
and NULL keeps NaN out of comparisons and min/max on both databases); infinities are stored
as such.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models.functions import Left

# Characters of a param's value held by its index (at most 800 bytes of UTF-8, plus the key's
# 1,000: well within PostgreSQL's btree limit).
PARAM_INDEX_PREFIX = 200


class Lifecycle(models.TextChoices):
    ACTIVE = "active", "Active"  # visible and writable
    DELETED = "deleted", "Deleted"  # soft-deleted: hidden from default views, restorable


class RunStatus(models.TextChoices):
    RUNNING = "RUNNING", "Running"  # still recording
    FINISHED = "FINISHED", "Finished"  # ended normally
    FAILED = "FAILED", "Failed"  # ended with an error
    KILLED = "KILLED", "Killed"  # stopped by a person or a limit


TERMINAL_RUN_STATUSES = frozenset({RunStatus.FINISHED, RunStatus.FAILED, RunStatus.KILLED})

# Who may move a run where. Ended runs go back to RUNNING only when resumed explicitly
# (MLflow's `start_run(run_id=...)` does exactly that); everything else is refused.
RUN_TRANSITIONS: dict[str, frozenset[str]] = {
    RunStatus.RUNNING: TERMINAL_RUN_STATUSES,
    RunStatus.FINISHED: frozenset({RunStatus.RUNNING}),
    RunStatus.FAILED: frozenset({RunStatus.RUNNING}),
    RunStatus.KILLED: frozenset({RunStatus.RUNNING}),
}


class RunSource(models.TextChoices):
    JOB = "job", "Job"  # created by a Studiolo job (Job.run points here)
    EXTERNAL = "external", "External"  # code outside Studiolo: the REST API, the MLflow client


class Experiment(models.Model):
    team = models.ForeignKey("accounts.Team", on_delete=models.PROTECT, related_name="experiments")
    # MLflow's limit. Names stay reserved while an experiment is soft-deleted, as in MLflow.
    name = models.CharField(max_length=500)
    description = models.TextField(blank=True)
    lifecycle = models.CharField(max_length=16, choices=Lifecycle.choices, default=Lifecycle.ACTIVE)
    deleted_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["team", "name"], name="experiment_unique_name_per_team"
            ),
        ]
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.name


class ExperimentTag(models.Model):
    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="tags")
    key = models.CharField(max_length=250)
    value = models.TextField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["experiment", "key"], name="experiment_tag_unique_key"),
        ]

    def __str__(self) -> str:
        return f"{self.key}={self.value[:40]}"


class Run(models.Model):
    # The integer id stays the primary key (jobs and model packages point at it); `run_uuid`
    # is the public id, 32 hex digits as MLflow's run ids are.
    run_uuid = models.CharField(max_length=32, unique=True)
    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="runs")
    name = models.CharField(max_length=250)
    status = models.CharField(max_length=16, choices=RunStatus.choices, default=RunStatus.RUNNING)
    start_time = models.BigIntegerField()  # ms since the epoch
    end_time = models.BigIntegerField(null=True, blank=True)
    source = models.CharField(max_length=16, choices=RunSource.choices, default=RunSource.EXTERNAL)
    lifecycle = models.CharField(max_length=16, choices=Lifecycle.choices, default=Lifecycle.ACTIVE)
    deleted_at = models.DateTimeField(null=True, blank=True)
    # Where the run's artifacts live in the artifact store (the store's own URI of the folder).
    artifact_uri = models.CharField(max_length=1024, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-start_time", "-id"]
        indexes = [
            # Run tables and searches are "this experiment's runs, newest first".
            models.Index(fields=["experiment", "-start_time"], name="run_experiment_start"),
        ]

    def __str__(self) -> str:
        return self.name


class RunParam(models.Model):
    """A parameter: written once. Logging the same value again is fine, another is refused."""

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="params")
    key = models.CharField(max_length=250)
    value = models.TextField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["run", "key"], name="run_param_unique_key"),
        ]
        indexes = [
            # Searches by value ("params.lr = '0.01'") find their runs through this whatever
            # the number of runs. Values run to 6,000 characters, past PostgreSQL's btree
            # row limit (about 2,700 bytes): the index holds a prefix, and searches compare
            # the prefix (`experiments.search`) and then the whole value.
            models.Index(
                models.F("key"), Left("value", PARAM_INDEX_PREFIX), name="run_param_key_value"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.key}={self.value[:40]}"


class RunTag(models.Model):
    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="tags")
    key = models.CharField(max_length=250)
    value = models.TextField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["run", "key"], name="run_tag_unique_key"),
        ]

    def __str__(self) -> str:
        return f"{self.key}={self.value[:40]}"


class MetricPoint(models.Model):
    """One value of one metric. Written only in bulk, as rows of plain tuples
    (`experiments.services.logging`), never one ORM object per point."""

    # No database constraint and no index of its own, on purpose: the write path locks the
    # run's row (it exists, and cannot be deleted until the batch commits) once per batch,
    # where a constraint checks it once per point (about a quarter of a 1,000-point batch on
    # PostgreSQL); the (run, key, step) index leads with the run for deletes. Deleting a run
    # through the ORM deletes its points (CASCADE is done by Django, as for every model).
    run = models.ForeignKey(
        Run, on_delete=models.CASCADE, related_name="+", db_constraint=False, db_index=False
    )
    key = models.CharField(max_length=250)
    value = models.FloatField(null=True)  # NULL is NaN; infinities are stored as such
    step = models.BigIntegerField(default=0)
    timestamp = models.BigIntegerField()  # ms since the epoch

    class Meta:
        indexes = [
            # History reads are "this run, this key, in step order" (optionally a step
            # range): one index serves them, the downsampling query and chunked deletes.
            # MLflow's time order has no index of its own (one slowed every write, see
            # docs/experiments.md): it is this one's whenever the series' summary says so
            # (`MetricSummary.in_step_order`).
            models.Index(fields=["run", "key", "step"], name="metric_run_key_step"),
        ]

    def __str__(self) -> str:
        return f"{self.key}[{self.step}]={self.value}"


class MetricSummary(models.Model):
    """Per run and key: the latest value (MLflow's "latest": greatest step, then greatest
    timestamp, then greatest value), min, max and count. Kept in the same transaction as the
    points, so run tables, searches and orderings never read the points."""

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="metric_summaries")
    key = models.CharField(max_length=250)
    last_value = models.FloatField(null=True)  # NULL is NaN
    last_step = models.BigIntegerField()
    last_timestamp = models.BigIntegerField()  # ms since the epoch
    min_value = models.FloatField(null=True)  # over non-NaN values; NULL when all were NaN
    max_value = models.FloatField(null=True)
    count = models.BigIntegerField()
    # Whether the series in step order (step, timestamp, arrival) is also in MLflow's history
    # order (timestamp, step, value with NaN as 0, arrival): then `metrics/get-history` pages
    # through the step index (`selectors.HistoryOrder`). Kept by the write path's upsert: set
    # while each point was logged after all those before it in both orders (`rollups.Arrival`),
    # cleared for good by the first that was not. False for series logged before it was kept.
    in_step_order = models.BooleanField(default=False)
    # The series' first point as logged. The upsert compares a batch's first point with the
    # stored last one to keep `in_step_order`, and the batch's values reach its ON CONFLICT
    # clause only as the columns of the row it would insert. NULL for series logged before.
    first_step = models.BigIntegerField(null=True)
    first_timestamp = models.BigIntegerField(null=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["run", "key"], name="metric_summary_unique_run_key"),
        ]
        indexes = [
            # Searches and orderings across runs on one metric ("metrics.acc > 0.9").
            models.Index(fields=["key", "last_value"], name="metric_summary_key_value"),
        ]

    def __str__(self) -> str:
        return f"{self.key}={self.last_value}"


class MetricRollup(models.Model):
    """One cell of a metric series' multi-resolution summary (`experiments.rollups`): the
    points of one run and key whose steps fall in `[bucket * 4**level, (bucket + 1) *
    4**level)`. Kept in the same transaction as the points, merged in SQL like the summary,
    so a chart of a million points reads a few thousand of these instead of the points.

    Extremes are real points (value, step, timestamp): a downsampled chart draws the very
    points that were logged, and spikes survive any zoom. Among equal values the earliest
    step (then time) is kept."""

    # The cell is the identity: no surrogate id, and the primary key is the one index reads
    # and the write path's ON CONFLICT both need.
    pk = models.CompositePrimaryKey("run", "key", "level", "bucket")
    # As for the points (and written in the same transactions, after them): no constraint
    # checked per row, no index beside the primary key's.
    run = models.ForeignKey(
        Run, on_delete=models.CASCADE, related_name="+", db_constraint=False, db_index=False
    )
    key = models.CharField(max_length=250)
    level = models.SmallIntegerField()  # cells of 4**level steps
    bucket = models.BigIntegerField()  # floor(step / 4**level)
    count = models.BigIntegerField()  # points, NaN included
    nan_count = models.BigIntegerField()
    first_step = models.BigIntegerField()
    last_step = models.BigIntegerField()
    # The cell's latest point (greatest step, then time, then value; NaN below every number).
    last_timestamp = models.BigIntegerField()
    last_value = models.FloatField(null=True)  # NULL is NaN
    # The lowest and highest non-NaN points; NULL when every point of the cell was NaN.
    min_value = models.FloatField(null=True)
    min_step = models.BigIntegerField(null=True)
    min_timestamp = models.BigIntegerField(null=True)
    max_value = models.FloatField(null=True)
    max_step = models.BigIntegerField(null=True)
    max_timestamp = models.BigIntegerField(null=True)

    def __str__(self) -> str:
        return f"{self.key}@{self.level}[{self.bucket}]"
