"""Reads of runs and metric series."""

from __future__ import annotations

from django.db.models import QuerySet

from experiments.models import MetricPoint, MetricSummary


def metric_history(*, run_id: int, key: str) -> QuerySet[MetricPoint]:
    return MetricPoint.objects.filter(run_id=run_id, key=key).order_by("step", "timestamp", "id")


def metric_summaries(*, run_id: int) -> QuerySet[MetricSummary]:
    return MetricSummary.objects.filter(run_id=run_id).order_by("key")
