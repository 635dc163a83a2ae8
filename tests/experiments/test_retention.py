"""Deleted runs and experiments are purged for good once TRACKING_RETENTION_DAYS have passed:
metric points and rollups (in bounded chunks), params, tags, summaries and their artifacts in
the store; audited by `system`. Nothing of an active or not yet expired run is touched."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import connection, models
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from experiments.models import (
    Experiment,
    ExperimentTag,
    MetricPoint,
    MetricRollup,
    MetricSummary,
    Run,
    RunParam,
    RunTag,
)
from experiments.services import (
    MetricInput,
    experiment_create,
    experiment_delete,
    experiment_restore,
    experiment_set_tags,
    run_artifact_prefix,
    run_artifact_put,
    run_create,
    run_delete,
    run_log_batch,
    run_restore,
)
from experiments.services.retention import purge_expired
from experiments.tasks import purge_expired_task
from jobs.models import Job, JobStatus
from registry.services.registration import InferenceSpec, package_register_from_job
from studio.accounts.models import Team
from studio.artifacts import get_store
from studio.audit.models import AuditEvent
from studio.celery import app
from studio.errors import ValidationError
from studio.schedules import BEAT_SCHEDULE
from tests.registry.conftest import completed_job, make_group

pytestmark = pytest.mark.django_db

T0 = 1_700_000_000_000


@pytest.fixture(autouse=True)
def _thirty_days(settings: Any) -> None:
    settings.TRACKING_RETENTION_DAYS = 30


def recorded_run(experiment: Experiment, user: User, name: str, points: int = 50) -> Run:
    """A run with metric points, params, tags and two artifacts, all through the services."""
    run = run_create(experiment=experiment, name=name, actor=user, tags={"stage": "dev"})
    run_log_batch(
        run=run,
        actor=user,
        metrics=[MetricInput("loss", 1 / (i + 1), i, T0 + i) for i in range(points)],
        params=[("lr", "0.1")],
    )
    run_artifact_put(run=run, actor=user, path="model/model.pkl", data=b"weights")
    run_artifact_put(run=run, actor=user, path="plots/loss.csv", data=b"step,loss\n")
    return run


def deleted_days_ago(obj: Run | Experiment, days: float) -> None:
    """Move a deletion back in time, as if it had happened `days` ago."""
    type(obj).objects.filter(pk=obj.pk).update(deleted_at=timezone.now() - timedelta(days=days))


def artifacts(run: Run) -> list[str]:
    return [
        info.key.rsplit("/artifacts/", 1)[1] for info in get_store().list(run_artifact_prefix(run))
    ]


def per_run_rows(run: Run) -> int:
    """Rows of every model that points at runs and goes with them (points, summaries, params,
    tags, and whatever else a later change adds, such as rollups)."""
    total = 0
    for relation in Run._meta.get_fields(include_hidden=True):
        cascades = getattr(relation, "on_delete", None) is models.CASCADE
        if relation.auto_created and not relation.concrete and cascades:
            column = relation.field.attname  # type: ignore[union-attr]
            manager = relation.related_model._base_manager  # type: ignore[union-attr]
            total += manager.filter(**{column: run.pk}).count()
    return total


def everything_of(run: Run) -> dict[str, int]:
    return {
        "points": MetricPoint.objects.filter(run_id=run.pk).count(),
        "summaries": MetricSummary.objects.filter(run_id=run.pk).count(),
        "params": RunParam.objects.filter(run_id=run.pk).count(),
        "tags": RunTag.objects.filter(run_id=run.pk).count(),
        "artifacts": len(artifacts(run)),
    }


def test_a_run_deleted_past_retention_is_purged_and_nothing_else_is_touched(
    experiment: Experiment, scientist: User
) -> None:
    expired = recorded_run(experiment, scientist, "expired")
    recent = recorded_run(experiment, scientist, "recent")
    active = recorded_run(experiment, scientist, "active")
    for run in (expired, recent):
        run_delete(run=run, actor=scientist)
    deleted_days_ago(expired, 31)
    deleted_days_ago(recent, 29)
    untouched = {run.pk: everything_of(run) for run in (recent, active)}

    result = purge_expired()

    assert (result.runs, result.points, result.artifacts) == (1, 50, 2)
    assert not Run.objects.filter(pk=expired.pk).exists()
    assert everything_of(expired) == dict.fromkeys(untouched[active.pk], 0)
    assert per_run_rows(expired) == 0
    assert per_run_rows(active) == per_run_rows(recent) > 53
    assert {run.pk: everything_of(run) for run in (recent, active)} == untouched
    assert untouched[active.pk] == {
        "points": 50,
        "summaries": 1,
        "params": 1,
        "tags": 1,
        "artifacts": 2,
    }
    event = AuditEvent.objects.get(action="run.purged")
    assert (event.actor_name, event.object_id, event.team) == (
        "system",
        expired.run_uuid,
        experiment.team,
    )
    assert event.details["metric_points"] == 50
    assert event.details["artifacts"] == 2
    assert purge_expired().runs == 0  # idempotent: the next pass finds nothing


def test_metric_points_go_in_bounded_chunks(experiment: Experiment, scientist: User) -> None:
    run = recorded_run(experiment, scientist, "big", points=50)
    run_delete(run=run, actor=scientist)
    deleted_days_ago(run, 40)
    table = MetricPoint._meta.db_table
    with CaptureQueriesContext(connection) as queries:
        purge_expired(points_per_chunk=7)
    statement = ["DELETE", "FROM", connection.ops.quote_name(table)]
    deletes = [q["sql"] for q in queries if q["sql"].split()[:3] == statement]
    chunks = [sql for sql in deletes if "LIMIT 7" in sql]
    assert len(chunks) == 8  # 7 chunks of 7, then the last point
    assert len(deletes) == 9  # and the run's cascade, with nothing left to delete
    assert not MetricPoint.objects.filter(run_id=run.pk).exists()


def test_metric_rollups_go_in_bounded_chunks_and_other_runs_keep_theirs(
    experiment: Experiment, scientist: User
) -> None:
    # Steps 4**10 apart: each point is a cell of its own at each of the 9 levels.
    spread = [MetricInput("loss", float(i), i * 4**10, T0 + i) for i in range(50)]
    doomed = run_create(experiment=experiment, name="doomed", actor=scientist)
    kept = run_create(experiment=experiment, name="kept", actor=scientist)
    for run in (doomed, kept):
        run_log_batch(run=run, actor=scientist, metrics=spread)
    assert MetricRollup.objects.filter(run_id=doomed.pk).count() == 450
    run_delete(run=doomed, actor=scientist)
    deleted_days_ago(doomed, 40)
    table = MetricRollup._meta.db_table

    with CaptureQueriesContext(connection) as queries:
        result = purge_expired(rollups_per_chunk=100)

    statement = ["DELETE", "FROM", connection.ops.quote_name(table)]
    deletes = [q["sql"] for q in queries if q["sql"].split()[:3] == statement]
    chunks = [sql for sql in deletes if "LIMIT 100" in sql]
    assert len(chunks) == 5  # 4 chunks of 100, then the last 50
    assert len(deletes) == 6  # and the run's cascade, with nothing left to delete
    assert (result.runs, result.points, result.rollups) == (1, 50, 450)
    assert not MetricRollup.objects.filter(run_id=doomed.pk).exists()
    assert MetricRollup.objects.filter(run_id=kept.pk).count() == 450
    assert MetricPoint.objects.filter(run_id=kept.pk).count() == 50
    event = AuditEvent.objects.get(action="run.purged")
    assert (event.details["metric_points"], event.details["metric_rollups"]) == (50, 450)


def test_an_experiment_past_retention_goes_with_its_runs_and_frees_its_name(
    team: Team, scientist: User
) -> None:
    experiment = experiment_create(team=team, name="old", actor=scientist)
    experiment_set_tags(experiment=experiment, actor=scientist, tags={"owner": "ana"})
    runs = [recorded_run(experiment, scientist, f"r{i}") for i in range(2)]
    kept = experiment_create(team=team, name="kept", actor=scientist)
    kept_run = recorded_run(kept, scientist, "k")
    experiment_delete(experiment=experiment, actor=scientist)  # and its runs, at one time
    past = timezone.now() - timedelta(days=45)
    Experiment.objects.filter(pk=experiment.pk).update(deleted_at=past)
    Run.objects.filter(experiment=experiment).update(deleted_at=past)

    result = purge_expired()

    assert (result.runs, result.experiments, result.points) == (2, 1, 100)
    assert not Experiment.objects.filter(pk=experiment.pk).exists()
    assert not ExperimentTag.objects.filter(experiment_id=experiment.pk).exists()
    assert all(everything_of(run)["artifacts"] == 0 for run in runs)
    assert not list(get_store().list(f"teams/{team.slug}/experiments/{experiment.pk}"))
    assert everything_of(kept_run)["points"] == 50
    event = AuditEvent.objects.get(action="experiment.purged")
    assert (event.actor_name, event.object_id, event.details["name"]) == (
        "system",
        str(experiment.pk),
        "old",
    )
    assert AuditEvent.objects.filter(action="run.purged").count() == 2
    assert experiment_create(team=team, name="old", actor=scientist).name == "old"


def test_restoring_works_until_the_retention_period_ends(
    experiment: Experiment, scientist: User
) -> None:
    run = recorded_run(experiment, scientist, "r")
    run_delete(run=run, actor=scientist)
    deleted_days_ago(run, 29)
    assert run_restore(run=run, actor=scientist).lifecycle == "active"

    run_delete(run=run, actor=scientist)
    deleted_days_ago(run, 31)
    with pytest.raises(ValidationError, match="more than 30 days ago"):
        run_restore(run=run, actor=scientist)

    experiment_delete(experiment=experiment, actor=scientist)
    deleted_days_ago(experiment, 31)
    with pytest.raises(ValidationError, match="being purged"):
        experiment_restore(experiment=experiment, actor=scientist)


def test_a_run_behind_a_registered_model_package_is_kept(
    team: Team, experiment: Experiment, scientist: User
) -> None:
    run = recorded_run(experiment, scientist, "lineage")
    job = completed_job(team, scientist, "train-lineage", run=run)
    package_register_from_job(
        group=make_group(team, scientist),
        job=job,
        actor=scientist,
        inference=InferenceSpec(framework="sklearn"),
    )
    run_delete(run=run, actor=scientist)
    deleted_days_ago(run, 365)

    assert purge_expired().runs == 0
    assert everything_of(run)["points"] == 50
    assert everything_of(run)["artifacts"] == 2


def test_a_run_whose_job_is_still_going_is_kept(
    team: Team, experiment: Experiment, scientist: User
) -> None:
    run = recorded_run(experiment, scientist, "live")
    job = completed_job(team, scientist, "still-training", run=run, status=JobStatus.IN_PROGRESS)
    run_delete(run=run, actor=scientist)
    deleted_days_ago(run, 60)
    assert purge_expired().runs == 0

    Job.objects.filter(pk=job.pk).update(status=JobStatus.COMPLETED)
    assert purge_expired().runs == 1
    job.refresh_from_db()
    assert job.run_id is None  # the job's record stays, without its run


def test_zero_days_purges_at_the_next_pass(
    experiment: Experiment, scientist: User, settings: Any
) -> None:
    settings.TRACKING_RETENTION_DAYS = 0
    run = recorded_run(experiment, scientist, "gone")
    run_delete(run=run, actor=scientist)
    assert purge_expired_task() == 1
    assert not Run.objects.filter(pk=run.pk).exists()


def test_beat_runs_the_purge_every_hour() -> None:
    entry = BEAT_SCHEDULE["experiments-purge-expired"]
    assert entry["task"] == "experiments.purge_expired"
    assert entry["task"] in app.tasks
    assert entry["schedule"] == 3600.0
