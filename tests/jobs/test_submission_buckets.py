"""`s3://<team bucket>/<key>` URIs are taken wherever the studio takes a URI (training
channels, source, output path, batch transform input and output, external model archives),
on either store backend, and stored as the store's own URI; another team's bucket is a 400
naming the field, as if it did not exist."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.test import Client

from endpoints.services.models import model_create_from_image
from jobs.models import Job
from registry.services.registration import (
    ExternalArtifact,
    InferenceSpec,
    package_register_external,
)
from studio.artifacts import S3ArtifactStore, get_store
from studio.errors import ValidationError
from tests.factories import make_team, make_token, make_user
from tests.fixtures.s3 import moto_server, s3_store  # noqa: F401 - fixtures
from tests.jobs.test_submission import source_archive
from tests.registry.conftest import make_group
from tests.transform.support import TransformApi, register_model

pytestmark = pytest.mark.django_db


@pytest.fixture(params=["local", "s3"])
def backend(request: pytest.FixtureRequest, settings: Any) -> Iterator[str]:
    """The studio's store on each backend in turn (S3: moto's server, a bucket per test)."""
    settings.RUNTIME = "process"  # every image "exists"; nothing is started
    if request.param == "s3":
        s3: S3ArtifactStore = request.getfixturevalue("s3_store")
        settings.ARTIFACT_STORE = f"s3://{s3.bucket}/{s3.prefix}"
        settings.S3_ENDPOINT_URL = s3.endpoint_url
    get_store.cache_clear()
    yield request.param
    get_store.cache_clear()


@pytest.fixture
def lab(backend: str, client: Client, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    monkeypatch.setattr("jobs.tasks.run_job.apply_async", lambda *a, **k: None)
    team = make_team("lab")
    make_team("other")
    user = make_user(team, role="scientist")
    store = get_store()
    store.put("teams/lab/data/train.csv", b"1,2\n3,4\n")
    store.put("teams/lab/code/sourcedir.tar.gz", source_archive({"train.py": "print(1)\n"}))
    store.put("teams/other/data/train.csv", b"secret\n")
    return {"team": team, "user": user, "auth": f"Bearer {make_token(user)}"}


def training(**overrides: Any) -> dict[str, Any]:
    body = {
        "name": "job-1",
        "framework": "sklearn",
        "entry_point": "train.py",
        "source_uri": "s3://studiolo-lab/code/sourcedir.tar.gz",
        "instance_type": "ml.local.small",
        "input_channels": [{"name": "train", "uri": "s3://studiolo-lab/data/"}],
        "output_path": "s3://studiolo-lab/models",
    }
    body.update(overrides)
    return body


def post(client: Client, lab: dict[str, Any], body: dict[str, Any]) -> Any:
    return client.post(
        "/api/v1/jobs", body, content_type="application/json", HTTP_AUTHORIZATION=lab["auth"]
    )


def test_a_training_job_takes_the_team_bucket_and_stores_the_store_uris(
    client: Client, lab: dict[str, Any]
) -> None:
    response = post(client, lab, training())
    assert response.status_code == 201, response.content
    job = Job.objects.get(pk=response.json()["id"])
    store = get_store()
    assert job.source_uri == store.uri("teams/lab/code/sourcedir.tar.gz")
    assert job.input_channels[0]["uri"] == store.uri("teams/lab/data")
    assert job.output_path == store.uri("teams/lab/models")


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        (
            {"input_channels": [{"name": "train", "uri": "s3://studiolo-other/data/"}]},
            "input_channels.train",
        ),
        (
            {"input_channels": [{"name": "train", "uri": "s3://studiolo-lab/nothing/"}]},
            "input_channels.train",
        ),
        ({"source_uri": "s3://studiolo-other/code/sourcedir.tar.gz"}, "source_uri"),
        ({"output_path": "s3://studiolo-other/models"}, "output_path"),
        ({"output_path": "s3://studiolo-nobody/models"}, "output_path"),
    ],
)
def test_another_teams_bucket_is_a_400_naming_the_field(
    client: Client, lab: dict[str, Any], overrides: dict[str, Any], field: str
) -> None:
    response = post(client, lab, training(**overrides))
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["field"] == field
    assert "does not exist" in error["message"]
    assert not Job.objects.exists()


def test_a_batch_transform_reads_and_writes_through_the_team_bucket(
    client: Client, lab: dict[str, Any]
) -> None:
    approver = make_user(lab["team"], role="approver")
    register_model(lab["team"], lab["user"], approver)
    api = TransformApi(client, lab["team"], make_token(lab["user"]))
    body = {
        "name": "score-1",
        "model": "summer/1",
        "input_uri": "s3://studiolo-lab/data/",
        "output_path": "s3://studiolo-lab/scored",
        "instance_type": "ml.local.small",
        "content_type": "text/csv",
    }
    response = api.post(body)
    assert response.status_code == 201, response.content
    store = get_store()
    job = Job.objects.get(pk=response.json()["id"])
    assert job.output_path == store.uri("teams/lab/scored")
    refused = api.post({**body, "name": "score-2", "input_uri": "s3://studiolo-other/data/"})
    assert refused.status_code == 400
    assert refused.json()["error"]["field"] == "input_uri"


def test_external_model_archives_take_the_team_bucket(lab: dict[str, Any]) -> None:
    store = get_store()
    store.put("teams/lab/uploads/model.tar.gz", b"\x1f\x8b archive")
    store.put("teams/other/uploads/model.tar.gz", b"\x1f\x8b archive")
    team, author = lab["team"], lab["user"]
    package = package_register_external(
        group=make_group(team, author),
        actor=author,
        artifact=ExternalArtifact("s3://studiolo-lab/uploads/model.tar.gz"),
        inference=InferenceSpec(framework="sklearn"),
    )
    assert package.artifact_uri == store.uri("teams/lab/uploads/model.tar.gz")
    with pytest.raises(ValidationError, match="does not exist") as caught:
        package_register_external(
            group=make_group(team, author, name="again"),
            actor=author,
            artifact=ExternalArtifact("s3://studiolo-other/uploads/model.tar.gz"),
            inference=InferenceSpec(framework="sklearn"),
        )
    assert caught.value.field == "artifact_uri"

    admin = make_user(team, role="admin")
    model = model_create_from_image(
        team=team,
        actor=admin,
        name="raw",
        image="python:3",
        artifact_uri="s3://studiolo-lab/uploads/model.tar.gz",
    )
    assert model.artifact_uri == store.uri("teams/lab/uploads/model.tar.gz")
