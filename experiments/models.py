"""Experiments, runs and their metric series. Every job records into a run.

The tracking features (search, MLflow API, charts) arrive with the experiments issue; this
module holds what jobs need now: a run per job and metric points written in bulk.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models


class RunStatus(models.TextChoices):
    RUNNING = "RUNNING", "Running"  # still recording
    FINISHED = "FINISHED", "Finished"  # ended normally
    FAILED = "FAILED", "Failed"  # ended with an error
    KILLED = "KILLED", "Killed"  # stopped by a person or a limit


class Experiment(models.Model):
    team = models.ForeignKey("accounts.Team", on_delete=models.PROTECT, related_name="experiments")
    name = models.CharField(max_length=256)
    description = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["team", "name"], name="experiment_unique_name_per_team"
            ),
        ]
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.name


class Run(models.Model):
    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="runs")
    name = models.CharField(max_length=256)
    status = models.CharField(max_length=16, choices=RunStatus.choices, default=RunStatus.RUNNING)
    started_at = models.DateTimeField(auto_now_add=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-started_at"]
        indexes = [models.Index(fields=["experiment", "-started_at"], name="run_experiment_time")]

    def __str__(self) -> str:
        return self.name


class MetricPoint(models.Model):
    """One value of one metric. Written only in bulk (`metrics_log_batch`)."""

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=250)
    value = models.FloatField()  # NaN and infinities are stored as such
    step = models.BigIntegerField(default=0)
    timestamp = models.DateTimeField()

    class Meta:
        # History reads are "this run, this key, in step order": one index serves them.
        indexes = [models.Index(fields=["run", "key", "step"], name="metric_run_key_step")]

    def __str__(self) -> str:
        return f"{self.key}[{self.step}]={self.value}"


class MetricSummary(models.Model):
    """Latest value per run and key, kept in step with the points, for fast run tables."""

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="metric_summaries")
    key = models.CharField(max_length=250)
    last_value = models.FloatField()
    last_step = models.BigIntegerField()
    last_timestamp = models.DateTimeField()
    min_value = models.FloatField()
    max_value = models.FloatField()
    count = models.BigIntegerField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["run", "key"], name="metric_summary_unique_run_key"),
        ]

    def __str__(self) -> str:
        return f"{self.key}={self.last_value}"
