"""The approval bypass of issue #13, on real containers and a real worker: register a model,
get it approved, swap the archive, deploy. Through the API the swap is refused (403); done
straight in the store it is caught when the model is staged, for an endpoint and for a batch
transform alike, with the reason where users look. The approved bytes serve as before, and
a model's staged folder goes when nothing serves it any more."""

from __future__ import annotations

import hashlib
import io
import tarfile
import time
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.test import Client

from compute.staging import staged_model_root
from endpoints.models import Endpoint, EndpointStatus
from jobs.models import JobStatus
from jobs.runner import work_dir
from registry.services.approval import package_decide
from registry.services.registration import (
    ExternalArtifact,
    InferenceSpec,
    group_create,
    package_register_external,
)
from studio.artifacts import get_store
from tests.endpoints.conftest import approved_package, model_archive, wait_for_endpoint
from tests.factories import make_team, make_token, make_user
from tests.jobs.conftest import wait_for_job
from tests.transform.support import TransformApi, log_text, put_inputs
from tests.workers import Worker

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]
docker_only = pytest.mark.parametrize("runtime_name", ["docker"], indirect=True)


@pytest.fixture(autouse=True)
def _no_container_left_behind(no_container_left_behind: None) -> None:
    """(tests/endpoints/conftest.py)"""


def deploy(client: Client, auth: dict[str, Any], name: str, model: str) -> Endpoint:
    """Create an endpoint through the API and wait until it is no longer Creating."""
    response = client.post(
        "/api/v1/endpoints", {"name": name, "model": model}, "application/json", **auth
    )
    assert response.status_code == 201, response.content
    return wait_for_endpoint(
        Endpoint.objects.get(name=name, team__slug=response.json()["team"]).pk,
        lambda e: e.status != EndpointStatus.CREATING,
        timeout=120,
    )


def wait_until_gone(path: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while path.exists():
        assert time.monotonic() < deadline, f"{path.name} is still there"
        time.sleep(0.1)


@docker_only
def test_a_swapped_model_archive_is_refused_by_the_api_and_caught_at_every_deployment(
    client: Client, worker: Worker, use_runtime: str
) -> None:
    team = make_team("tamper")
    scientist = make_user(team, role="scientist")
    package = approved_package(team, scientist, make_user(team, role="approver"), tag="approved")
    auth: dict[str, Any] = {"HTTP_AUTHORIZATION": f"Bearer {make_token(scientist)}"}
    store = get_store()
    key = store.key_from_uri(package.artifact_uri)
    approved = store.get(key)
    # A swap of the very same size: only the digest can tell.
    swapped = next(
        data
        for data in (model_archive(f"evil{i:04}") for i in range(500))
        if len(data) == len(approved)
    )
    assert package.artifact_sha256 == hashlib.sha256(approved).hexdigest()

    # 1. The overwrite through the artifact API (what the CLI's upload uses): refused.
    response = client.put(
        f"/api/v1/artifacts/{key}", swapped, content_type="application/gzip", **auth
    )
    assert response.status_code == 403, response.content
    assert "artifact of model package echo/1" in response.json()["error"]["message"]
    assert store.get(key) == approved

    # 2. The same swap done straight in the store: the endpoint fails, saying why.
    store.put(key, swapped)
    endpoint = deploy(client, auth, "echo", "echo/1")
    assert endpoint.status == EndpointStatus.FAILED
    expected = (
        f"model artifact {key} changed since package echo/1 was registered "
        f"(sha256 {hashlib.sha256(swapped).hexdigest()}, expected {package.artifact_sha256})"
    )
    assert expected in endpoint.failure_reason
    assert str(settings.STUDIOLO_HOME) not in endpoint.failure_reason  # no host path
    assert not endpoint.instances.exists()
    root = staged_model_root(package.artifact_uri)
    assert not (root / "model").exists()  # nothing of the swapped archive was kept

    # ... and so does a batch transform of the same package.
    transforms = TransformApi(client, team, make_token(scientist))
    job_id = transforms.submit(
        name="score",
        model="echo/1",
        input_uri=put_inputs(team, "batch", {"rows.csv": "1,2\n"}),
        content_type="text/csv",
    )
    job = wait_for_job(job_id, timeout=120)
    assert job.status == JobStatus.FAILED, log_text(job)
    assert expected in job.failure_reason

    # 3. The approved bytes back: the same package deploys and answers as approved.
    store.put(key, approved)
    endpoint = deploy(client, auth, "echo-2", "echo/1")
    assert endpoint.status == EndpointStatus.IN_SERVICE, endpoint.failure_reason
    assert (root / "model" / "tag.txt").read_text() == "approved"

    # Deleting the last endpoint that serves the model removes its staged folder.
    assert client.delete("/api/v1/endpoints/echo", **auth).status_code == 202
    assert client.delete("/api/v1/endpoints/echo-2", **auth).status_code == 202
    deadline = time.monotonic() + 60
    while Endpoint.objects.filter(team=team).exists():
        assert time.monotonic() < deadline, "the endpoints were not deleted"
        time.sleep(0.1)
    wait_until_gone(root)


@docker_only
def test_a_transform_leaves_neither_its_work_folder_nor_its_model_staged(
    client: Client, worker: Worker, use_runtime: str
) -> None:
    team = make_team("staging")
    scientist = make_user(team, role="scientist")
    package = approved_package(team, scientist, make_user(team, role="approver"), tag="t")
    job_id = TransformApi(client, team, make_token(scientist)).submit(
        name="score",
        model=f"{package.group.name}/{package.version}",
        input_uri=put_inputs(team, "batch", {"rows.csv": "1,2\n"}),
        content_type="text/csv",
    )
    job = wait_for_job(job_id, timeout=120)
    assert job.status == JobStatus.COMPLETED, (job.failure_reason, log_text(job))
    assert "Staging the model" in log_text(job)
    wait_until_gone(work_dir(job))  # removed right after the final status is written
    wait_until_gone(staged_model_root(package.artifact_uri))


@docker_only
def test_a_model_archive_bomb_fails_its_endpoint_and_its_transform_naming_the_limit(
    client: Client, worker: Worker, use_runtime: str
) -> None:
    team = make_team("bombs")
    scientist = make_user(team, role="scientist")
    store = get_store()
    # A few KB that would unpack to 64 MiB (registration reads it, but does not unpack it).
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz", compresslevel=9) as tar:
        info = tarfile.TarInfo("zeros.bin")
        info.size = 64 * 1024 * 1024
        tar.addfile(info, io.BytesIO(bytes(info.size)))
    assert len(buffer.getvalue()) < 128 * 1024
    store.put("teams/bombs/models/bomb/model.tar.gz", buffer.getvalue())
    package = package_register_external(
        group=group_create(team=team, name="bomb", actor=scientist),
        actor=scientist,
        artifact=ExternalArtifact(store.uri("teams/bombs/models/bomb/model.tar.gz")),
        inference=InferenceSpec(framework="sklearn"),
    )
    package_decide(
        package=package, actor=make_user(team, role="approver"), decision="approve", comment="ok"
    )
    auth: dict[str, Any] = {"HTTP_AUTHORIZATION": f"Bearer {make_token(scientist)}"}
    refusal = "model archive teams/bombs/models/bomb/model.tar.gz is refused: it expands to more than 200 times its own size"

    endpoint = deploy(client, auth, "bomb", "bomb/1")
    assert endpoint.status == EndpointStatus.FAILED
    assert refusal in endpoint.failure_reason
    assert "(ARCHIVE_MAX_RATIO)" in endpoint.failure_reason

    job_id = TransformApi(client, team, make_token(scientist)).submit(
        name="score",
        model="bomb/1",
        input_uri=put_inputs(team, "batch", {"rows.csv": "1,2\n"}),
        content_type="text/csv",
    )
    job = wait_for_job(job_id, timeout=120)
    assert job.status == JobStatus.FAILED, log_text(job)
    assert refusal in job.failure_reason
    assert not (staged_model_root(package.artifact_uri) / "model").exists()
