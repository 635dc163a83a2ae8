"""Registering from a real completed job copies its lineage: data → job → run → model."""

from __future__ import annotations

import io
import tarfile
from typing import Any

import pytest

from jobs.models import JobStatus
from jobs.runner import run_job
from jobs.services.submission import ChannelRequest, JobRequest, MetricDefinition, job_create
from registry.services.registration import InferenceSpec, group_create, package_register_from_job
from studio.artifacts import get_store
from studio.errors import ValidationError
from tests.factories import make_team, make_user

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

TRAIN = """
import os, json
print("rows", open(os.path.join(os.environ["SM_CHANNEL_TRAIN"], "d.csv")).read().count("\\n"))
for step in range(3):
    print(f"val_auc={0.8 + step / 100:.3f}", flush=True)
open(os.path.join(os.environ["SM_MODEL_DIR"], "model.json"), "w").write(json.dumps({"w": [1, 2]}))
"""


def sourcedir(script: str) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        info = tarfile.TarInfo("train.py")
        info.size = len(script.encode())
        tar.addfile(info, io.BytesIO(script.encode()))
    return buffer.getvalue()


def test_package_from_a_completed_job_carries_its_lineage(
    docker_engine: None, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.RUNTIME = "docker"
    monkeypatch.setattr("jobs.tasks.run_job.apply_async", lambda *a, **k: None)  # run it here
    store = get_store()
    team = make_team("lin")
    scientist = make_user(team, role="scientist")
    store.put("teams/lin/data/d.csv", b"1,2\n3,4\n5,6\n")
    store.put("teams/lin/src/sourcedir.tar.gz", sourcedir(TRAIN))
    job = job_create(
        team=team,
        actor=scientist,
        request=JobRequest(
            name="lineage-job",
            framework="sklearn",
            entry_point="train.py",
            source_uri=store.uri("teams/lin/src/sourcedir.tar.gz"),
            instance_type="ml.local.small",
            hyperparameters={"depth": "4"},
            channels=[ChannelRequest("train", store.uri("teams/lin/data"))],
            metric_definitions=[MetricDefinition("val:auc", r"val_auc=([0-9.]+)")],
        ),
    )
    group = group_create(team=team, name="lineage", actor=scientist)
    with pytest.raises(ValidationError) as error:  # not completed yet
        package_register_from_job(
            group=group, job=job, actor=scientist, inference=InferenceSpec(framework="sklearn")
        )
    assert error.value.field == "job"

    run_job(job.pk)  # the real runner, the real container
    job.refresh_from_db()
    assert job.status == JobStatus.COMPLETED, job.failure_reason

    package = package_register_from_job(
        group=group,
        job=job,
        actor=scientist,
        inference=InferenceSpec(framework="sklearn", entry_point="inference.py"),
    )
    assert package.version == 1
    assert package.external is False
    assert package.artifact_uri == job.model_artifact_uri
    assert package.source_job_id == job.pk
    assert package.source_run_id == job.run_id
    assert package.hyperparameters == {"depth": "4"}
    assert package.input_data == [{"name": "train", "uri": store.uri("teams/lin/data")}]
    assert package.training_image == "studiolo/sklearn:latest"
    assert package.image_digest.startswith("sha256:")
    assert package.metrics == {"val:auc": pytest.approx(0.82)}
    assert package.image == "studiolo/sklearn:latest"
    assert package.entry_point == "inference.py"
