"""Keys users may not write (403, saying why): what the platform wrote for a job, and any
archive a model package pinned; signed download links work for the key's team only."""

from __future__ import annotations

from typing import Any

import pytest
from django.conf import settings
from django.test import Client

from experiments.services import experiment_create, run_artifact_put, run_create
from experiments.services.runs import run_artifact_prefix
from jobs.models import Job, JobKind, JobStatus
from registry.services.registration import (
    ExternalArtifact,
    InferenceSpec,
    group_create,
    package_register_external,
)
from studio.artifacts import get_store, sign_download
from studio.errors import PermissionDenied
from tests.factories import make_team, make_token, make_user

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _process_runtime(settings: Any) -> None:
    settings.RUNTIME = "process"  # every image "exists" for registrations


def put(client: Client, key: str, user: Any, data: bytes = b"swapped") -> Any:
    return client.put(
        f"/api/v1/artifacts/{key}",
        data,
        content_type="application/octet-stream",
        HTTP_AUTHORIZATION=f"Bearer {make_token(user)}",
    )


def test_the_model_and_output_of_a_training_job_cannot_be_overwritten(client: Client) -> None:
    team = make_team("lab")
    scientist = make_user(team, role="scientist")
    store = get_store()
    store.put("teams/lab/jobs/churn/output/model.tar.gz", b"the job's model")
    Job.objects.create(
        team=team,
        name="churn",
        image="x",
        instance_type="ml.local.small",
        output_path=store.uri("teams/lab/jobs"),
        status=JobStatus.COMPLETED,
        model_artifact_uri=store.uri("teams/lab/jobs/churn/output/model.tar.gz"),
    )
    for key in (
        "teams/lab/jobs/churn/output/model.tar.gz",
        "teams/lab/jobs/churn/output/output.tar.gz",
        "teams/lab/jobs/churn/output/anything-else",
    ):
        response = put(client, key, scientist)
        assert response.status_code == 403, response.content
        error = response.json()["error"]
        assert error["field"] == "key"
        assert "output of training job churn, which only the platform writes" in error["message"]
    assert store.get("teams/lab/jobs/churn/output/model.tar.gz") == b"the job's model"
    # Next to it, and another job's name: the team's own area as before.
    assert put(client, "teams/lab/jobs/churn/notes.txt", scientist).status_code == 201
    assert put(client, "teams/lab/jobs/other/output/model.tar.gz", scientist).status_code == 201


def test_a_pending_job_output_folder_is_protected_before_anything_is_written(
    client: Client,
) -> None:
    team = make_team("lab")
    Job.objects.create(
        team=team,
        name="later",
        image="x",
        instance_type="ml.local.small",
        output_path=get_store().uri("teams/lab/results"),
    )
    key = "teams/lab/results/later/output/model.tar.gz"
    assert put(client, key, make_user(team, role="scientist")).status_code == 403


def test_a_transforms_predictions_are_protected_and_its_output_folder_otherwise_is_not(
    client: Client,
) -> None:
    team = make_team("lab")
    scientist = make_user(team, role="scientist")
    Job.objects.create(
        team=team,
        name="scoring",
        kind=JobKind.TRANSFORM,
        image="x",
        instance_type="ml.local.small",
        output_path=get_store().uri("teams/lab/predictions"),
    )
    response = put(client, "teams/lab/predictions/2024/part-1.csv.out", scientist)
    assert response.status_code == 403, response.content
    assert "batch transform job scoring" in response.json()["error"]["message"]
    assert put(client, "teams/lab/predictions/README.txt", scientist).status_code == 201


def test_an_archive_a_package_was_registered_with_cannot_be_overwritten(client: Client) -> None:
    team = make_team("lab")
    scientist = make_user(team, role="scientist")
    store = get_store()
    store.put("teams/lab/uploads/model.tar.gz", b"approved bytes")
    package = package_register_external(
        group=group_create(team=team, name="churn", actor=scientist),
        actor=scientist,
        artifact=ExternalArtifact(store.uri("teams/lab/uploads/model.tar.gz")),
        inference=InferenceSpec(framework="sklearn"),
    )
    response = put(client, "teams/lab/uploads/model.tar.gz", scientist)
    assert response.status_code == 403, response.content
    assert f"artifact of model package {package}" in response.json()["error"]["message"]
    assert store.get("teams/lab/uploads/model.tar.gz") == b"approved bytes"
    # A team's non-member still learns nothing: 404, as for any key of another team.
    outsider = make_user(make_team("other"), role="admin")
    assert put(client, "teams/lab/uploads/model.tar.gz", outsider).status_code == 404


def test_a_run_artifact_pinned_by_a_package_cannot_be_overwritten_through_tracking() -> None:
    team = make_team("lab")
    scientist = make_user(team, role="scientist")
    run = run_create(
        experiment=experiment_create(team=team, name="exp", actor=scientist),
        name="r",
        actor=scientist,
    )
    run_artifact_put(run=run, actor=scientist, path="model.tar.gz", data=b"logged model")
    store = get_store()
    package_register_external(
        group=group_create(team=team, name="churn", actor=scientist),
        actor=scientist,
        artifact=ExternalArtifact(store.uri(f"{run_artifact_prefix(run)}/model.tar.gz")),
        inference=InferenceSpec(framework="sklearn"),
    )
    with pytest.raises(PermissionDenied, match="artifact of model package churn/1"):
        run_artifact_put(run=run, actor=scientist, path="model.tar.gz", data=b"swapped")
    run_artifact_put(run=run, actor=scientist, path="notes.txt", data=b"fine")


def test_a_signed_link_works_for_the_keys_team_only(client: Client) -> None:
    get_store().put("teams/lab/jobs/j/output/model.tar.gz", b"model")
    link = "/artifacts/download?" + sign_download(
        "teams/lab/jobs/j/output/model.tar.gz", secret=settings.SECRET_KEY
    )
    member = make_user(make_team("lab"), role="viewer")
    outsider = make_user(make_team("other"), role="admin")
    response = client.get(link, HTTP_AUTHORIZATION=f"Bearer {make_token(member)}")
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == b"model"
    refused = client.get(link, HTTP_AUTHORIZATION=f"Bearer {make_token(outsider)}")
    assert refused.status_code == 404
    assert refused.json()["error"]["code"] == "not_found"
