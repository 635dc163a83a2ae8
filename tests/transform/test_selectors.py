"""A running batch transform keeps its staged model: the transform app tells the worker's
staging which models it still needs (registered at start-up)."""

from __future__ import annotations

import io
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from compute.serving import ServingSource
from compute.staging import stage_model, staged_models_prune
from jobs.models import Job, JobKind, JobStatus
from studio.artifacts import get_store
from tests.factories import make_team

pytestmark = pytest.mark.django_db
KEY = "teams/lab/models/churn/model.tar.gz"


@pytest.fixture(autouse=True)
def work(settings: Any, tmp_path: Path) -> Iterator[Path]:
    """A work folder and an artifact store of the test's own."""
    settings.JOBS_WORK_DIR = tmp_path / "work"
    settings.ARTIFACT_STORE = str(tmp_path / "artifacts")
    get_store.cache_clear()
    yield settings.JOBS_WORK_DIR
    get_store.cache_clear()


def archive(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o600
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def test_a_running_transform_keeps_its_model() -> None:
    get_store().put(KEY, archive({"w": b"w"}))
    root = stage_model(ServingSource(image="img", artifact_uri=get_store().uri(KEY)))
    job = Job.objects.create(
        team=make_team(),
        name="scoring",
        kind=JobKind.TRANSFORM,
        image="x",
        instance_type="ml.local.small",
        output_path="x",
        status=JobStatus.IN_PROGRESS,
        transform={"model_artifact_uri": get_store().uri(KEY)},
    )
    staged_models_prune()
    assert root.is_dir()
    Job.objects.filter(pk=job.pk).update(status=JobStatus.COMPLETED)
    staged_models_prune()
    assert not root.exists()
