"""The tracking services: what a run accepts, what it refuses, and that a refused batch
leaves nothing behind."""

from __future__ import annotations

import math

import pytest
from django.contrib.auth.models import User

from experiments.models import (
    Experiment,
    Lifecycle,
    MetricPoint,
    MetricSummary,
    Run,
    RunParam,
    RunSource,
    RunStatus,
    RunTag,
)
from experiments.selectors import metric_history, run_for_user
from experiments.services import (
    IllegalRunTransition,
    MetricInput,
    Point,
    experiment_create,
    experiment_delete,
    experiment_get_or_create,
    experiment_restore,
    metrics_log_batch,
    run_create,
    run_delete,
    run_end,
    run_log_batch,
    run_rename,
    run_restore,
    run_transition,
    run_update,
)
from studio.accounts.models import Team
from studio.audit.models import AuditEvent
from studio.errors import Conflict, NotFound, PermissionDenied, ValidationError

pytestmark = pytest.mark.django_db

T0 = 1_700_000_000_000


def m(key: str, value: float, step: int = 0, timestamp: int = T0) -> MetricInput:
    return MetricInput(key, value, step, timestamp)


def nothing_written(run: Run) -> bool:
    return not (
        MetricPoint.objects.filter(run=run).exists()
        or MetricSummary.objects.filter(run=run).exists()
        or RunParam.objects.filter(run=run).exists()
        or RunTag.objects.filter(run=run).exists()
    )


# --- experiments ----------------------------------------------------------------------------


def test_experiment_names_are_unique_per_team(team: Team, scientist: User) -> None:
    experiment_create(team=team, name="churn", actor=scientist)
    with pytest.raises(Conflict):
        experiment_create(team=team, name="churn", actor=scientist)


def test_viewers_cannot_create_experiments(team: Team, viewer: User) -> None:
    with pytest.raises(PermissionDenied):
        experiment_create(team=team, name="x", actor=viewer)


def test_another_teams_member_is_told_the_team_does_not_exist(team: Team, outsider: User) -> None:
    with pytest.raises(NotFound):
        experiment_create(team=team, name="x", actor=outsider)


def test_deleting_an_experiment_deletes_its_runs_and_restoring_brings_back_only_those(
    experiment: Experiment, scientist: User
) -> None:
    alone = run_create(experiment=experiment, name="alone", actor=scientist)
    together = run_create(experiment=experiment, name="together", actor=scientist)
    run_delete(run=alone, actor=scientist)
    experiment_delete(experiment=experiment, actor=scientist)
    assert experiment.lifecycle == Lifecycle.DELETED
    assert experiment.deleted_at is not None
    together.refresh_from_db()
    assert together.lifecycle == Lifecycle.DELETED
    experiment_restore(experiment=experiment, actor=scientist)
    alone.refresh_from_db()
    together.refresh_from_db()
    assert experiment.lifecycle == Lifecycle.ACTIVE
    assert together.lifecycle == Lifecycle.ACTIVE
    assert alone.lifecycle == Lifecycle.DELETED
    actions = list(
        AuditEvent.objects.filter(object_type="experiments.experiment").values_list(
            "action", "actor_name"
        )
    )
    assert ("experiment.deleted", scientist.username) in actions
    assert ("experiment.restored", scientist.username) in actions


def test_jobs_cannot_record_into_a_deleted_experiment(
    experiment: Experiment, scientist: User, team: Team
) -> None:
    experiment_delete(experiment=experiment, actor=scientist)
    with pytest.raises(ValidationError, match="deleted"):
        experiment_get_or_create(team=team, name="churn", actor=scientist)


# --- runs and their status ------------------------------------------------------------------


def test_a_run_gets_a_32_hex_id_an_artifact_folder_and_an_audit_event(
    run: Run, scientist: User
) -> None:
    assert len(run.run_uuid) == 32
    assert int(run.run_uuid, 16) >= 0
    assert run.status == RunStatus.RUNNING
    assert run.source == RunSource.EXTERNAL
    assert run.artifact_uri.endswith(
        f"teams/{run.experiment.team.slug}/experiments/{run.experiment_id}/runs/{run.run_uuid}/artifacts"
    )
    event = AuditEvent.objects.get(action="run.created")
    assert event.object_id == run.run_uuid
    assert event.actor_name == scientist.username


def test_ending_a_run_records_who_and_when_and_ended_runs_only_resume(
    run: Run, scientist: User
) -> None:
    assert run_transition(run=run, status=RunStatus.FINISHED, actor=scientist, end_time=T0)
    run.refresh_from_db()
    assert (run.status, run.end_time) == (RunStatus.FINISHED, T0)
    assert not run_transition(run=run, status=RunStatus.FINISHED, actor=scientist)
    with pytest.raises(IllegalRunTransition):
        run_transition(run=run, status=RunStatus.FAILED, actor=scientist)
    assert run_transition(run=run, status=RunStatus.RUNNING, actor=scientist)
    run.refresh_from_db()
    assert (run.status, run.end_time) == (RunStatus.RUNNING, None)
    flips = [
        e.details for e in AuditEvent.objects.filter(action="run.status_changed").order_by("id")
    ]
    assert [(f["from"], f["to"]) for f in flips] == [
        ("RUNNING", "FINISHED"),
        ("FINISHED", "RUNNING"),
    ]


def test_the_platform_ends_a_job_run_once(run: Run) -> None:
    assert run_end(run=run, status=RunStatus.KILLED)
    assert not run_end(run=run, status=RunStatus.FINISHED)
    run.refresh_from_db()
    assert run.status == RunStatus.KILLED
    assert run.end_time is not None
    assert AuditEvent.objects.get(action="run.status_changed").actor_name == "system"


def test_unknown_statuses_are_refused(run: Run, scientist: User) -> None:
    with pytest.raises(ValidationError, match="status"):
        run_update(run=run, actor=scientist, status="SCHEDULED")


def test_a_deleted_run_is_restorable_and_audited(run: Run, scientist: User) -> None:
    run_delete(run=run, actor=scientist)
    assert run.lifecycle == Lifecycle.DELETED
    with pytest.raises(ValidationError, match="deleted"):
        run_log_batch(run=run, actor=scientist, metrics=[m("loss", 1.0)])
    run_restore(run=run, actor=scientist)
    assert run.lifecycle == Lifecycle.ACTIVE
    assert {"run.deleted", "run.restored"} <= set(
        AuditEvent.objects.values_list("action", flat=True)
    )


def test_renaming_a_run_is_audited_with_who_and_when(run: Run, scientist: User) -> None:
    run_rename(run=run, actor=scientist, name="  tuned  ")
    run.refresh_from_db()
    assert run.name == "tuned"
    event = AuditEvent.objects.get(action="run.renamed")
    assert (event.actor, event.object_id, event.details) == (
        scientist,
        run.run_uuid,
        {"from": "baseline", "to": "tuned"},
    )
    assert event.created_at is not None
    run_rename(run=run, actor=scientist, name="tuned")  # the same name changes nothing
    assert AuditEvent.objects.filter(action="run.renamed").count() == 1


@pytest.mark.parametrize(
    ("name", "says"), [("", "needs a name"), ("   ", "needs a name"), ("x" * 251, "limit is 250")]
)
def test_a_blank_or_too_long_run_name_is_refused(
    run: Run, scientist: User, name: str, says: str
) -> None:
    with pytest.raises(ValidationError, match=says) as refused:
        run_rename(run=run, actor=scientist, name=name)
    assert refused.value.field == "name"
    run.refresh_from_db()
    assert run.name == "baseline"
    assert not AuditEvent.objects.filter(action="run.renamed").exists()


def test_viewers_cannot_rename_delete_or_restore_runs(
    run: Run, scientist: User, viewer: User
) -> None:
    with pytest.raises(PermissionDenied):
        run_rename(run=run, actor=viewer, name="mine")
    with pytest.raises(PermissionDenied):
        run_delete(run=run, actor=viewer)
    run_delete(run=run, actor=scientist)
    with pytest.raises(PermissionDenied):
        run_restore(run=run, actor=viewer)
    run.refresh_from_db()
    assert (run.name, run.lifecycle) == ("baseline", Lifecycle.DELETED)


def test_a_deleted_run_cannot_be_renamed(run: Run, scientist: User) -> None:
    read_before = Run.objects.select_related("experiment__team").get(pk=run.pk)
    run_delete(run=run, actor=scientist)
    # `read_before` still says active: the rename's conditional update finds it deleted.
    for copy in (run, read_before):
        with pytest.raises(ValidationError, match="restore it first"):
            run_rename(run=copy, actor=scientist, name="ghost")
    assert Run.objects.get(pk=run.pk).name == "baseline"
    assert not AuditEvent.objects.filter(action="run.renamed").exists()


def test_another_teams_run_is_not_found(run: Run, outsider: User) -> None:
    with pytest.raises(NotFound):
        run_for_user(outsider, run.run_uuid)
    with pytest.raises(NotFound):
        run_log_batch(run=run, actor=outsider, metrics=[m("loss", 1.0)])


def test_viewers_cannot_log(run: Run, viewer: User) -> None:
    with pytest.raises(PermissionDenied):
        run_log_batch(run=run, actor=viewer, params=[("lr", "0.1")])
    assert nothing_written(run)


# --- params ---------------------------------------------------------------------------------


def test_a_param_can_be_logged_again_with_the_same_value(run: Run, scientist: User) -> None:
    run_log_batch(run=run, actor=scientist, params=[("lr", "0.1")])
    run_log_batch(run=run, actor=scientist, params=[("lr", "0.1")])
    assert list(RunParam.objects.filter(run=run).values_list("key", "value")) == [("lr", "0.1")]


def test_changing_a_param_is_refused_naming_the_key_and_the_batch_writes_nothing(
    run: Run, scientist: User
) -> None:
    run_log_batch(run=run, actor=scientist, params=[("lr", "0.1")])
    with pytest.raises(ValidationError) as refused:
        run_log_batch(
            run=run,
            actor=scientist,
            metrics=[m("loss", 0.5)],
            params=[("depth", "3"), ("lr", "0.2")],
            tags=[("note", "x")],
        )
    assert refused.value.field == "params.lr"
    assert "'lr'" in refused.value.message
    assert list(RunParam.objects.filter(run=run).values_list("key", flat=True)) == ["lr"]
    assert not MetricPoint.objects.filter(run=run).exists()
    assert not RunTag.objects.filter(run=run).exists()


def test_a_batch_with_one_key_twice_with_different_values_is_refused(
    run: Run, scientist: User
) -> None:
    with pytest.raises(ValidationError, match="twice"):
        run_log_batch(run=run, actor=scientist, params=[("a", "1"), ("a", "2")])
    assert nothing_written(run)


# --- validation of a whole batch before anything is written ---------------------------------


@pytest.mark.parametrize(
    "key",
    ["", "a..b/../c", "../up", "/abs", "a//b", "trailing/", "semi;colon", "x" * 251, "a/./b", "."],
)
def test_keys_outside_mlflows_rules_reject_the_whole_batch(
    run: Run, scientist: User, key: str
) -> None:
    with pytest.raises(ValidationError):
        run_log_batch(
            run=run, actor=scientist, metrics=[m("fine", 1.0), m(key, 2.0)], params=[("p", "1")]
        )
    assert nothing_written(run)


@pytest.mark.parametrize("key", ["loss", "val/loss", "a.b-c_d", "with space", "ns:key", "é"])
def test_keys_in_mlflows_alphabet_are_accepted(run: Run, scientist: User, key: str) -> None:
    run_log_batch(run=run, actor=scientist, metrics=[m(key, 1.0)], params=[(key, "v")])


@pytest.mark.parametrize(
    ("metrics", "params", "tags", "field"),
    [
        (1001, 0, 0, "metrics"),
        (0, 101, 0, "params"),
        (0, 0, 101, "tags"),
        (900, 100, 1, "metrics"),  # over 1,000 entities in all
    ],
)
def test_batches_over_mlflows_limits_are_refused(
    run: Run, scientist: User, metrics: int, params: int, tags: int, field: str
) -> None:
    with pytest.raises(ValidationError) as refused:
        run_log_batch(
            run=run,
            actor=scientist,
            metrics=[m("loss", 1.0, step) for step in range(metrics)],
            params=[(f"p{i}", "1") for i in range(params)],
            tags=[(f"t{i}", "1") for i in range(tags)],
        )
    assert refused.value.field == field
    assert nothing_written(run)


def test_values_over_their_length_limits_are_refused(run: Run, scientist: User) -> None:
    with pytest.raises(ValidationError, match="6000"):
        run_log_batch(run=run, actor=scientist, params=[("p", "x" * 6001)])
    with pytest.raises(ValidationError, match="8000"):
        run_log_batch(run=run, actor=scientist, tags=[("t", "x" * 8001)])
    run_log_batch(run=run, actor=scientist, params=[("p", "x" * 6000)], tags=[("t", "x" * 8000)])


def test_metrics_and_params_cannot_be_logged_to_a_finished_run_but_tags_can(
    run: Run, scientist: User
) -> None:
    run_update(run=run, actor=scientist, status=RunStatus.FINISHED)
    with pytest.raises(ValidationError, match="FINISHED"):
        run_log_batch(run=run, actor=scientist, metrics=[m("loss", 1.0)])
    with pytest.raises(ValidationError, match="FINISHED"):
        run_log_batch(run=run, actor=scientist, params=[("lr", "1")])
    assert nothing_written(run)
    run_log_batch(run=run, actor=scientist, tags=[("verdict", "best")])
    assert RunTag.objects.get(run=run).value == "best"


def test_tags_are_overwritten(run: Run, scientist: User) -> None:
    run_log_batch(run=run, actor=scientist, tags=[("stage", "a")])
    run_log_batch(run=run, actor=scientist, tags=[("stage", "b")])
    assert list(RunTag.objects.filter(run=run).values_list("value", flat=True)) == ["b"]


# --- metric points and their summaries ------------------------------------------------------


def test_points_are_kept_and_summarised_with_mlflows_latest(run: Run, scientist: User) -> None:
    run_log_batch(
        run=run,
        actor=scientist,
        metrics=[m("loss", 0.9, 0, T0), m("loss", 0.4, 2, T0 + 5), m("loss", 0.7, 1, T0 + 9)],
    )
    # A later step wins over a later timestamp; on the same step, the later timestamp wins.
    run_log_batch(run=run, actor=scientist, metrics=[m("loss", 0.3, 2, T0 + 1)])
    run_log_batch(run=run, actor=scientist, metrics=[m("loss", 0.2, 1, T0 + 100)])
    summary = MetricSummary.objects.get(run=run, key="loss")
    assert (summary.last_value, summary.last_step, summary.last_timestamp) == (0.4, 2, T0 + 5)
    run_log_batch(run=run, actor=scientist, metrics=[m("loss", 0.35, 2, T0 + 6)])
    summary.refresh_from_db()
    assert (summary.last_value, summary.last_step, summary.last_timestamp) == (0.35, 2, T0 + 6)
    assert (summary.min_value, summary.max_value, summary.count) == (0.2, 0.9, 6)
    assert list(metric_history(run_id=run.pk, key="loss").values_list("step", "value")) == [
        (0, 0.9),
        (1, 0.7),
        (1, 0.2),
        (2, 0.3),
        (2, 0.4),
        (2, 0.35),
    ]


def test_nan_and_infinities_are_stored_as_such(run: Run, scientist: User) -> None:
    run_log_batch(
        run=run,
        actor=scientist,
        metrics=[m("x", math.inf, 0), m("x", -math.inf, 1), m("x", math.nan, 2)],
    )
    values = list(metric_history(run_id=run.pk, key="x").values_list("value", flat=True))
    assert values[:2] == [math.inf, -math.inf]
    assert values[2] is None  # NaN is NULL in the database, on both backends
    summary = MetricSummary.objects.get(run=run, key="x")
    assert summary.last_value is None
    assert summary.last_step == 2
    assert (summary.min_value, summary.max_value) == (-math.inf, math.inf)


def test_a_series_of_only_nan_has_no_min_or_max(run: Run, scientist: User) -> None:
    run_log_batch(run=run, actor=scientist, metrics=[m("x", math.nan, 0)])
    summary = MetricSummary.objects.get(run=run, key="x")
    assert (summary.min_value, summary.max_value, summary.count) == (None, None, 1)
    run_log_batch(run=run, actor=scientist, metrics=[m("x", 3.0, 1)])
    summary.refresh_from_db()
    assert (summary.last_value, summary.min_value, summary.max_value, summary.count) == (
        3.0,
        3.0,
        3.0,
        2,
    )


def test_a_thousand_points_are_one_batch(run: Run, scientist: User) -> None:
    run_log_batch(
        run=run,
        actor=scientist,
        metrics=[m(f"k{i % 10}", float(i), i, T0 + i) for i in range(1000)],
    )
    assert MetricPoint.objects.filter(run=run).count() == 1000
    summaries = {s.key: s for s in MetricSummary.objects.filter(run=run)}
    assert summaries["k9"].last_value == 999.0
    assert summaries["k9"].count == 100


def test_job_log_metrics_are_recorded_by_the_platform(run: Run) -> None:
    from django.utils import timezone

    now = timezone.now()
    assert metrics_log_batch(run_id=run.pk, points=[Point("acc", 0.5, 0, now)]) == 1
    summary = MetricSummary.objects.get(run=run)
    assert summary.last_timestamp == int(now.timestamp() * 1000)
