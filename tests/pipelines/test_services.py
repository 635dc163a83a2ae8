"""Pipelines' services: versions only for changed definitions, the diff, permissions, audit,
and the one writer of executions' and steps' statuses."""

from __future__ import annotations

import json

import pytest
from django.contrib.auth.models import User

from pipelines.models import (
    ExecutionStatus,
    ExecutionTransition,
    PipelineVersion,
    StepStatus,
    StepTransition,
)
from pipelines.services import (
    execution_create,
    execution_transition,
    pipeline_create,
    pipeline_update,
    step_execution_create,
    step_transition,
    version_diff,
)
from studio.accounts.models import Team
from studio.audit.models import AuditEvent
from studio.errors import Conflict, PermissionDenied, ValidationError
from tests.factories import make_team, make_user
from tests.pipelines.support import canonical, small

pytestmark = pytest.mark.django_db


@pytest.fixture
def team() -> Team:
    return make_team()


@pytest.fixture
def scientist(team: Team) -> User:
    return make_user(team, role="scientist")


def test_creating_a_pipeline_makes_version_1_with_the_canonical_digest(
    team: Team, scientist: User
) -> None:
    pipeline = pipeline_create(
        team=team, name="abalone", definition=json.dumps(canonical()), actor=scientist
    )
    (version,) = pipeline.versions.all()
    assert version.number == 1
    assert version.definition == canonical()
    assert len(version.digest) == 64
    assert version.created_by == scientist
    assert AuditEvent.objects.filter(action="pipeline.created", object_id=str(pipeline.pk)).exists()


def test_a_viewer_may_not_create_a_pipeline(team: Team) -> None:
    with pytest.raises(PermissionDenied):
        pipeline_create(team=team, name="p", definition=small(), actor=make_user(team, "viewer"))


@pytest.mark.parametrize("name", ["", "-lead", "trail-", "has space", "a" * 257, "under_score"])
def test_a_pipeline_name_outside_sagemakers_rule_is_refused(
    team: Team, scientist: User, name: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        pipeline_create(team=team, name=name, definition=small(), actor=scientist)
    assert caught.value.field == "name"


def test_a_name_is_unique_per_team_only(team: Team, scientist: User) -> None:
    pipeline_create(team=team, name="p", definition=small(), actor=scientist)
    with pytest.raises(ValidationError, match="exists already"):
        pipeline_create(team=team, name="p", definition=small(), actor=scientist)
    other = make_team()
    pipeline_create(team=other, name="p", definition=small(), actor=make_user(other))


def test_a_bad_definition_creates_nothing(team: Team, scientist: User) -> None:
    document = small()
    document["Steps"][1]["DependsOn"] = ["Nowhere"]
    with pytest.raises(ValidationError):
        pipeline_create(team=team, name="p", definition=document, actor=scientist)
    assert not PipelineVersion.objects.exists()


def test_an_update_makes_a_version_only_when_the_definition_changed(
    team: Team, scientist: User
) -> None:
    pipeline = pipeline_create(team=team, name="p", definition=small(), actor=scientist)
    # The same document, written differently: same digest, no version.
    same = json.dumps(small(), indent=3, sort_keys=True)
    version, created = pipeline_update(pipeline=pipeline, definition=same, actor=scientist)
    assert (version.number, created) == (1, False)
    version, created = pipeline_update(
        pipeline=pipeline, definition=small(default=0.7), actor=scientist, version_description="x"
    )
    assert (version.number, created, version.description) == (2, True, "x")
    assert AuditEvent.objects.filter(action="pipeline.updated").count() == 1


def test_an_update_of_the_description_alone_makes_no_version(team: Team, scientist: User) -> None:
    pipeline = pipeline_create(team=team, name="p", definition=small(), actor=scientist)
    version, created = pipeline_update(pipeline=pipeline, description="new", actor=scientist)
    assert (version.number, created) == (1, False)
    pipeline.refresh_from_db()
    assert pipeline.description == "new"


def test_the_diff_shows_what_changed_between_two_versions(team: Team, scientist: User) -> None:
    pipeline = pipeline_create(team=team, name="p", definition=small(), actor=scientist)
    pipeline_update(pipeline=pipeline, definition=small(default=0.7), actor=scientist)
    diff = version_diff(pipeline=pipeline, a=1, b=2)
    assert diff.startswith("--- p v1\n+++ p v2\n")
    assert '-      "DefaultValue": 0.5,' in diff
    assert '+      "DefaultValue": 0.7,' in diff
    assert version_diff(pipeline=pipeline, a=2, b=2) == ""


def test_an_execution_moves_along_its_table_and_logs_every_move(
    team: Team, scientist: User
) -> None:
    pipeline = pipeline_create(team=team, name="p", definition=small(), actor=scientist)
    execution = execution_create(
        pipeline=pipeline, actor=scientist, parameters={"Threshold": "0.9"}
    )
    assert execution.status == ExecutionStatus.EXECUTING
    assert execution.parameters == {"Threshold": 0.9}
    assert execution_transition(execution=execution, to=ExecutionStatus.STOPPING, actor=scientist)
    assert not execution_transition(execution=execution, to=ExecutionStatus.STOPPING)
    with pytest.raises(Conflict, match="Stopping: it cannot become Succeeded"):
        execution_transition(execution=execution, to=ExecutionStatus.SUCCEEDED)
    execution_transition(execution=execution, to=ExecutionStatus.STOPPED, actor="orchestrator")
    execution.refresh_from_db()
    assert execution.ended_at is not None
    moves = list(
        ExecutionTransition.objects.filter(execution=execution).values_list(
            "from_status", "to_status", "actor_name"
        )
    )
    assert moves == [
        ("", "Executing", scientist.username),
        ("Executing", "Stopping", scientist.username),
        ("Stopping", "Stopped", "system: orchestrator"),
    ]


def test_an_execution_with_a_bad_parameter_is_refused(team: Team, scientist: User) -> None:
    pipeline = pipeline_create(team=team, name="p", definition=small(), actor=scientist)
    with pytest.raises(ValidationError) as caught:
        execution_create(pipeline=pipeline, actor=scientist, parameters={"Threshold": "high"})
    assert caught.value.field == "parameters.Threshold"


def test_a_step_retried_counts_its_attempts_and_keeps_its_failure_until_then(
    team: Team, scientist: User
) -> None:
    pipeline = pipeline_create(team=team, name="p", definition=small(), actor=scientist)
    execution = execution_create(pipeline=pipeline, actor=scientist)
    step = step_execution_create(execution=execution, step_name="Prepare")
    assert (step.status, step.step_type, step.attempts) == ("Starting", "Processing", 1)
    step_transition(step=step, to=StepStatus.EXECUTING)
    step_transition(step=step, to=StepStatus.FAILED, message="out of memory")
    assert step.failure_reason == "out of memory"
    assert step.ended_at is not None
    step_transition(step=step, to=StepStatus.STARTING, message="retry")
    assert (step.attempts, step.failure_reason, step.ended_at) == (2, "", None)
    step_transition(step=step, to=StepStatus.EXECUTING)
    step_transition(step=step, to=StepStatus.SUCCEEDED, outputs={"ProcessingJobName": "j"})
    with pytest.raises(Conflict):
        step_transition(step=step, to=StepStatus.FAILED)
    step.refresh_from_db()
    assert step.outputs == {"ProcessingJobName": "j"}
    assert StepTransition.objects.filter(step=step).count() == 6


def test_a_step_not_in_the_definition_is_refused(team: Team, scientist: User) -> None:
    pipeline = pipeline_create(team=team, name="p", definition=small(), actor=scientist)
    execution = execution_create(pipeline=pipeline, actor=scientist)
    with pytest.raises(ValidationError, match="no step 'Nope'"):
        step_execution_create(execution=execution, step_name="Nope")
