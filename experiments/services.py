"""Changes to experiments, runs and metric series."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser, User
from django.db import IntegrityError, transaction
from django.utils import timezone

from experiments.models import Experiment, MetricPoint, MetricSummary, Run, RunStatus
from studio.accounts.models import Team
from studio.audit.services import audit_record
from studio.errors import ValidationError

Actor = AbstractBaseUser | AnonymousUser | None


@dataclass(frozen=True)
class Point:
    key: str
    value: float
    step: int
    timestamp: datetime


def _user(actor: Actor) -> User | None:
    return actor if isinstance(actor, User) else None


def experiment_get_or_create(*, team: Team, name: str, actor: Actor) -> Experiment:
    name = name.strip()
    if not name or len(name) > 256:
        raise ValidationError("experiment: 1-256 characters", field="experiment")
    existing = Experiment.objects.filter(team=team, name=name).first()
    if existing is not None:
        return existing
    try:
        with transaction.atomic():
            experiment = Experiment.objects.create(team=team, name=name, created_by=_user(actor))
            audit_record(actor=actor, action="experiment.created", target=experiment, team=team)
    except IntegrityError:  # created concurrently by another request: use that one
        return Experiment.objects.get(team=team, name=name)
    return experiment


def run_create(*, experiment: Experiment, name: str, actor: Actor) -> Run:
    with transaction.atomic():
        run = Run.objects.create(experiment=experiment, name=name, created_by=_user(actor))
        audit_record(
            actor=actor,
            action="run.created",
            target=run,
            team=experiment.team,
            details={"experiment": experiment.name},
        )
    return run


def run_end(*, run: Run, status: RunStatus) -> bool:
    """Close a running run; returns False when it had already ended (idempotent)."""
    updated = Run.objects.filter(pk=run.pk, status=RunStatus.RUNNING).update(
        status=status, ended_at=timezone.now()
    )
    return updated == 1


def metrics_log_batch(*, run_id: int, points: Sequence[Point]) -> int:
    """Append points in one bulk insert and fold them into the per-key summaries."""
    if not points:
        return 0
    rows = [
        MetricPoint(run_id=run_id, key=p.key, value=p.value, step=p.step, timestamp=p.timestamp)
        for p in points
    ]
    by_key: dict[str, list[Point]] = {}
    for point in points:
        by_key.setdefault(point.key, []).append(point)
    with transaction.atomic():
        MetricPoint.objects.bulk_create(rows, batch_size=1000)
        summaries = {
            s.key: s
            for s in MetricSummary.objects.select_for_update().filter(run_id=run_id, key__in=by_key)
        }
        new: list[MetricSummary] = []
        for key, series in by_key.items():
            last = max(series, key=lambda p: (p.step, p.timestamp))
            finite = [p.value for p in series if not math.isnan(p.value)]
            summary = summaries.get(key)
            if summary is None:
                new.append(
                    MetricSummary(
                        run_id=run_id,
                        key=key,
                        last_value=last.value,
                        last_step=last.step,
                        last_timestamp=last.timestamp,
                        min_value=min(finite, default=math.nan),
                        max_value=max(finite, default=math.nan),
                        count=len(series),
                    )
                )
                continue
            if (last.step, last.timestamp) >= (summary.last_step, summary.last_timestamp):
                summary.last_value, summary.last_step = last.value, last.step
                summary.last_timestamp = last.timestamp
            if finite:
                summary.min_value = _nan_min(summary.min_value, min(finite))
                summary.max_value = _nan_max(summary.max_value, max(finite))
            summary.count += len(series)
            summary.save()
        MetricSummary.objects.bulk_create(new)
    return len(rows)


def _nan_min(a: float, b: float) -> float:
    return b if math.isnan(a) else min(a, b)


def _nan_max(a: float, b: float) -> float:
    return b if math.isnan(a) else max(a, b)
