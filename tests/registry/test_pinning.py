"""A package pins its artifact's content (sha256 and size, read from the store at
registration) on either store backend; the API shows the pin; packages registered before
pinning are pinned by the migration when their archive is still there, and never deployed
when it is not."""

from __future__ import annotations

import hashlib
import importlib
from collections.abc import Iterator
from typing import Any

import pytest
from django.apps import apps
from django.test import Client

from registry.models import ModelPackage
from registry.services.approval import (
    package_decide,
    package_is_deployable,
    package_require_deployable,
)
from registry.services.registration import (
    ExternalArtifact,
    InferenceSpec,
    package_register_external,
)
from studio.artifacts import S3ArtifactStore, get_store
from studio.errors import ValidationError
from tests.factories import make_team, make_token, make_user
from tests.fixtures.s3 import (  # noqa: F401 - fixtures
    closed_local_port,
    moto_server,
    s3_store,
    use_fake_aws_environment,
)
from tests.registry.conftest import make_group, registered

pytestmark = pytest.mark.django_db
MODEL = b"model bytes"  # what tests.registry.conftest.completed_job stores


@pytest.fixture(params=["local", "s3"])
def backend(request: pytest.FixtureRequest, settings: Any) -> Iterator[str]:
    """The studio's store on each backend in turn (S3: moto's server, a bucket per test)."""
    if request.param == "s3":
        s3: S3ArtifactStore = request.getfixturevalue("s3_store")
        settings.ARTIFACT_STORE = f"s3://{s3.bucket}/{s3.prefix}"
        settings.S3_ENDPOINT_URL = s3.endpoint_url
    get_store.cache_clear()
    yield request.param
    get_store.cache_clear()


def test_a_package_from_a_job_pins_the_archive_it_was_registered_with(backend: str) -> None:
    team = make_team()
    author = make_user(team)
    package = registered(make_group(team, author), author, "train-1")
    assert package.artifact_sha256 == hashlib.sha256(MODEL).hexdigest()
    assert package.artifact_size == len(MODEL)
    assert package.artifact_uri.startswith("s3://" if backend == "s3" else "file://")


def test_an_external_package_pins_its_archive(backend: str) -> None:
    team = make_team("lab")
    author = make_user(team)
    store = get_store()
    data = b"\x1f\x8b external archive" * 1000
    store.put("teams/lab/uploads/model.tar.gz", data)
    package = package_register_external(
        group=make_group(team, author),
        actor=author,
        artifact=ExternalArtifact(store.uri("teams/lab/uploads/model.tar.gz")),
        inference=InferenceSpec(framework="sklearn"),
    )
    assert (package.artifact_sha256, package.artifact_size) == (
        hashlib.sha256(data).hexdigest(),
        len(data),
    )
    audit = apps.get_model("audit", "AuditEvent").objects.get(action="model_package.created")
    assert audit.details["artifact_sha256"] == package.artifact_sha256


def test_the_package_api_shows_the_pin(client: Client) -> None:
    team = make_team("lab")
    author = make_user(team)
    registered(make_group(team, author), author, "train-1")
    response = client.get(
        "/api/v1/teams/lab/model-groups/churn/packages/1",
        HTTP_AUTHORIZATION=f"Bearer {make_token(author)}",
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["artifact_sha256"] == hashlib.sha256(MODEL).hexdigest()
    assert body["artifact_size"] == len(MODEL)


def _migration() -> Any:
    return importlib.import_module("registry.migrations.0003_pin_registered_artifacts")


def test_the_upgrade_pins_older_packages_and_those_it_cannot_are_never_deployed() -> None:
    team = make_team("lab")
    author, approver = make_user(team), make_user(team, role="approver")
    group = make_group(team, author)
    kept = registered(group, author, "kept")
    gone = registered(group, author, "gone")
    for package in (kept, gone):
        package_decide(package=package, actor=approver, decision="approve", comment="ok")
    # As they were before packages pinned their artifact.
    ModelPackage.objects.update(artifact_sha256="", artifact_size=None)
    store = get_store()
    store.delete(store.key_from_uri(gone.artifact_uri))

    _migration().pin_registered_artifacts(apps, None)

    kept.refresh_from_db()
    gone.refresh_from_db()
    assert kept.artifact_sha256 == hashlib.sha256(MODEL).hexdigest()
    assert kept.artifact_size == len(MODEL)
    assert package_is_deployable(kept)
    assert gone.artifact_sha256 == ""
    assert not package_is_deployable(gone)
    with pytest.raises(ValidationError) as error:
        package_require_deployable(gone)
    assert error.value.field == "model"
    assert "no pinned artifact checksum" in error.value.message
    assert "register the model again" in error.value.message


def test_the_upgrade_stops_rather_than_leave_packages_unpinned_when_the_store_is_away(
    settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    team = make_team("lab")
    author = make_user(team)
    package = registered(make_group(team, author), author, "train-1")
    ModelPackage.objects.update(
        artifact_sha256="",
        artifact_size=None,
        artifact_uri="s3://studiolo-away/prefix/teams/lab/model.tar.gz",
    )
    use_fake_aws_environment(monkeypatch)
    settings.ARTIFACT_STORE = "s3://studiolo-away/prefix"
    settings.S3_ENDPOINT_URL = f"http://127.0.0.1:{closed_local_port()}"
    get_store.cache_clear()
    try:
        with pytest.raises(RuntimeError, match="run the migration again"):
            _migration().pin_registered_artifacts(apps, None)
    finally:
        get_store.cache_clear()
    package.refresh_from_db()
    assert package.artifact_sha256 == ""
