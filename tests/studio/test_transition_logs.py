"""Every transition log (a job's, a package's, an endpoint's events, its instances' history)
has one shape: the same columns (`studio.transitions.TransitionLog`), the same fields in the
API and its schema, and the rows written before the shape was shared carried over."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from drf_spectacular.generators import SchemaGenerator
from rest_framework.test import APIClient

from endpoints.models import Endpoint, EndpointConfig, EndpointEvent, ServingModel
from jobs.models import Job, JobTransition
from registry.models import ApprovalTransition, ModelPackage, ModelPackageGroup
from studio.accounts.models import Team
from tests.factories import make_team, make_user

COMMON = {"from_status", "to_status", "message", "actor", "at"}
LOGS = ("JobTransition", "PackageTransition", "EndpointEvent", "InstanceTransition")


def test_the_schema_gives_every_log_the_same_common_fields() -> None:
    components = SchemaGenerator().get_schema(request=None, public=True)["components"]["schemas"]
    shapes = {
        name: {field: components[name]["properties"].get(field) for field in COMMON}
        for name in LOGS
    }
    first = shapes[LOGS[0]]
    assert all(first[field] is not None for field in COMMON), first
    for name in LOGS[1:]:
        assert shapes[name] == first, name


def _job(team: Team) -> Job:
    job = Job.objects.create(
        team=team, name="train-1", image="img", output_path="s3://b/o", instance_type="x"
    )
    JobTransition.objects.create(
        job=job,
        from_status="",
        to_status="Pending",
        secondary_status="Starting",
        message="Job submitted",
        actor_name="ada",
    )
    return job


def _package(team: Team) -> ModelPackage:
    group = ModelPackageGroup.objects.create(team=team, name="churn")
    package = ModelPackage.objects.create(group=group, version=1, artifact_uri="s3://b/m")
    ApprovalTransition.objects.create(
        package=package,
        from_status="PendingManualApproval",
        to_status="Approved",
        message="looks good",
        actor_name="ada",
    )
    return package


def _endpoint(team: Team) -> Endpoint:
    config = EndpointConfig.objects.create(team=team, name="churn-config")
    ServingModel.objects.create(team=team, name="churn", image="img", artifact_uri="s3://b/m")
    endpoint = Endpoint.objects.create(team=team, name="churn", config=config)
    EndpointEvent.objects.create(
        endpoint=endpoint, from_status="", to_status="Creating", message="made", actor_name="ada"
    )
    return endpoint


def _common(row: dict[str, Any]) -> dict[str, Any]:
    return {field: row[field] for field in COMMON}


@pytest.mark.django_db
def test_the_api_answers_every_log_in_the_same_shape_and_keeps_the_old_names() -> None:
    team = make_team()
    client = APIClient()
    client.force_authenticate(make_user(team, role="scientist"))
    job, package, endpoint = _job(team), _package(team), _endpoint(team)

    job_row = client.get(f"/api/v1/jobs/{job.pk}").json()["transitions"][0]
    package_row = client.get(
        f"/api/v1/teams/{team.slug}/model-groups/churn/packages/{package.version}"
    ).json()["transitions"][0]
    event_row = client.get(f"/api/v1/endpoints/{endpoint.name}?team={team.slug}").json()["events"][
        0
    ]

    assert _common(job_row) | {"at": None} == {
        "from_status": "",
        "to_status": "Pending",
        "message": "Job submitted",
        "actor": "ada",
        "at": None,
    }
    assert _common(package_row)["to_status"] == "Approved"
    assert _common(event_row)["to_status"] == "Creating"
    for row in (job_row, package_row, event_row):
        assert datetime.fromisoformat(row["at"]).tzinfo is not None
    # What earlier clients read is still there.
    assert (job_row["status"], job_row["secondary_status"]) == ("Pending", "Starting")
    assert package_row["comment"] == package_row["message"] == "looks good"


BEFORE = [
    ("jobs", "0004_job_dispatch_and_idempotency_key"),
    ("registry", "0003_pin_registered_artifacts"),
    ("endpoints", "0001_initial"),
]


@pytest.mark.django_db(transaction=True)
def test_the_logs_written_before_the_shared_shape_are_carried_over() -> None:
    team = make_team()
    job, package, endpoint = _job(team), _package(team), _endpoint(team)
    JobTransition.objects.all().delete()
    ApprovalTransition.objects.all().delete()
    EndpointEvent.objects.all().delete()
    at = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    executor = MigrationExecutor(connection)
    latest = executor.loader.graph.leaf_nodes()
    try:
        executor.migrate(BEFORE)
        old = executor.loader.project_state(BEFORE).apps
        transitions = old.get_model("jobs", "JobTransition")
        for status, secondary in (
            ("Pending", "Starting"),
            ("InProgress", "Starting"),
            ("InProgress", "Training"),
            ("Completed", "Completed"),
        ):
            row = transitions.objects.create(
                job_id=job.pk, status=status, secondary_status=secondary, actor_name="system"
            )
            transitions.objects.filter(pk=row.pk).update(at=at, message=f"{status}/{secondary}")
        votes = old.get_model("registry", "ApprovalTransition")
        row = votes.objects.create(
            package_id=package.pk,
            from_status="PendingManualApproval",
            to_status="Rejected",
            comment="the metrics are made up",
            actor_name="ada",
        )
        votes.objects.filter(pk=row.pk).update(at=at)
        events = old.get_model("endpoints", "EndpointEvent")
        row = events.objects.create(endpoint_id=endpoint.pk, to_status="Creating", actor_name="ada")
        events.objects.filter(pk=row.pk).update(at=at, message="Creating with config c")
    finally:
        executor = MigrationExecutor(connection)
        executor.migrate(latest)

    assert [
        (t.from_status, t.to_status, t.secondary_status, t.message, t.created_at)
        for t in JobTransition.objects.filter(job=job)
    ] == [
        ("", "Pending", "Starting", "Pending/Starting", at),
        ("Pending", "InProgress", "Starting", "InProgress/Starting", at),
        ("InProgress", "InProgress", "Training", "InProgress/Training", at),
        ("InProgress", "Completed", "Completed", "Completed/Completed", at),
    ]
    decision = ApprovalTransition.objects.get(package=package)
    assert (decision.to_status, decision.message, decision.actor_name, decision.created_at) == (
        "Rejected",
        "the metrics are made up",
        "ada",
        at,
    )
    event = EndpointEvent.objects.get(endpoint=endpoint)
    assert (event.to_status, event.message, event.created_at) == (
        "Creating",
        "Creating with config c",
        at,
    )
