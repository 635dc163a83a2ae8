"""Staging a model on a worker: checked against its pin while it downloads, unpacked within
the archive limits, refused with a reason users can read (no host path), never left half
done; and the folders nothing needs any more are removed."""

from __future__ import annotations

import hashlib
import io
import tarfile
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

import pytest
from django.utils import timezone

from jobs.archives import ArchiveRefused
from jobs.contract import stage_source
from jobs.models import Job, JobStatus
from jobs.serving import ServingSource
from jobs.staging import (
    job_folders_prune,
    stage_model,
    staged_model_root,
    staged_models_in_use_register,
    staged_models_prune,
)
from studio.artifacts import get_store
from studio.artifacts.integrity import ArtifactChanged, ArtifactPin
from studio.errors import ValidationError
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


def archive(files: dict[str, bytes], mode: Literal["w:gz", "w"] = "w:gz") -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode=mode) as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o600
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def source(data: bytes | None, key: str = KEY) -> ServingSource:
    """What a package of `data` serves (data None: an admin's image model, unpinned)."""
    pin = ArtifactPin(hashlib.sha256(data).hexdigest(), len(data)) if data is not None else None
    return ServingSource(
        image="img",
        artifact_uri=get_store().uri(key),
        pin=pin,
        pinned_by="package churn/3" if data is not None else "",
    )


def leftovers(work: Path) -> list[str]:
    return sorted(p.name for p in (work / "serving").iterdir() if not p.name.endswith(".lock"))


def test_the_pinned_archive_is_unpacked_once_and_readable(work: Path) -> None:
    data = archive({"weights.txt": b"w", "code/inference.py": b"x = 1\n"})
    get_store().put(KEY, data)
    root = stage_model(source(data))
    assert (root / "model" / "weights.txt").read_bytes() == b"w"
    assert (root / "model" / "weights.txt").stat().st_mode & 0o444 == 0o444
    get_store().delete(KEY)  # staged already: not downloaded again
    assert stage_model(source(data)) == root


def test_an_archive_swapped_in_the_store_is_refused_and_nothing_is_staged(
    work: Path,
) -> None:
    approved = archive({"weights.txt": b"approved"}, mode="w")
    swapped = archive({"weights.txt": b"evil!!!!"}, mode="w")
    assert len(swapped) == len(approved)  # same size: only the digest tells them apart
    get_store().put(KEY, swapped)  # straight into the store, past every API
    with pytest.raises(ArtifactChanged) as error:
        stage_model(source(approved))
    message = error.value.message
    assert message.startswith(f"model artifact {KEY} changed since package churn/3")
    assert f"sha256 {hashlib.sha256(swapped).hexdigest()}" in message
    assert f"expected {hashlib.sha256(approved).hexdigest()}" in message
    assert str(work) not in message
    assert leftovers(work) == []


def test_a_folder_staged_from_other_content_is_staged_again(work: Path) -> None:
    first = archive({"weights.txt": b"first"})
    get_store().put(KEY, first)
    stage_model(source(None))  # an unpinned model staged it earlier
    (staged_model_root(get_store().uri(KEY)) / ".studiolo-sha256").write_text("0" * 64)
    root = stage_model(source(first))
    assert (root / ".studiolo-sha256").read_text() == hashlib.sha256(first).hexdigest()


def test_a_package_without_a_pin_is_never_staged() -> None:
    get_store().put(KEY, archive({"w": b"w"}))
    legacy = ServingSource(image="img", artifact_uri=get_store().uri(KEY), pinned_by="package p/1")
    with pytest.raises(ValidationError, match="no pinned artifact checksum"):
        stage_model(legacy)


def test_a_model_archive_past_a_limit_fails_naming_it(work: Path, settings: Any) -> None:
    bomb = archive({"zeros.bin": bytes(4 * 1024 * 1024)})
    get_store().put(KEY, bomb)
    with pytest.raises(ArchiveRefused) as error:
        stage_model(source(bomb))
    assert "(ARCHIVE_MAX_RATIO)" in error.value.message
    assert error.value.message.startswith(f"model archive {KEY} is refused")
    settings.ARCHIVE_MAX_RATIO, settings.ARCHIVE_MAX_EXPANDED_MB = 100_000, 1
    with pytest.raises(ArchiveRefused, match="ARCHIVE_MAX_EXPANDED_MB"):
        stage_model(source(bomb))
    assert leftovers(work) == []


def test_a_missing_archive_is_named_by_its_key(work: Path) -> None:
    with pytest.raises(ValidationError) as error:
        stage_model(source(b"never stored"))
    assert error.value.message == f"model: the model archive {KEY} does not exist"


def test_staged_models_nothing_serves_are_removed(
    work: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    in_use: list[str] = []
    monkeypatch.setattr("jobs.staging._in_use", {})
    staged_models_in_use_register("test", lambda: in_use)
    kept_key, gone_key = KEY, "teams/lab/models/old/model.tar.gz"
    for key in (kept_key, gone_key):
        get_store().put(key, archive({"w": key.encode()}))
        stage_model(source(None, key))
    in_use.append(get_store().uri(kept_key))
    crashed = work / "serving" / f".{staged_model_root(in_use[0]).name}-dead"
    crashed.mkdir()  # a staging whose worker died: nobody holds its lock
    assert staged_models_prune() == 2
    assert leftovers(work) == [staged_model_root(in_use[0]).name]
    assert not (
        work / "serving" / f"{staged_model_root(get_store().uri(gone_key)).name}.lock"
    ).exists()


def test_work_folders_of_ended_or_deleted_jobs_are_removed(work: Path) -> None:
    team = make_team()

    def job(name: str, status: str, ended_ago: timedelta | None) -> Job:
        ended = timezone.now() - ended_ago if ended_ago is not None else None
        made = Job.objects.create(
            team=team,
            name=name,
            image="x",
            instance_type="ml.local.small",
            output_path="x",
            status=status,
            ended_at=ended,
        )
        (work / f"job-{made.pk}" / "opt_ml").mkdir(parents=True)
        return made

    running = job("running", JobStatus.IN_PROGRESS, None)
    just_ended = job("just-ended", JobStatus.FAILED, timedelta(seconds=5))
    ended = job("ended", JobStatus.COMPLETED, timedelta(minutes=5))
    deleted = job("deleted", JobStatus.COMPLETED, timedelta(minutes=5))
    Job.objects.filter(pk=deleted.pk).delete()
    (work / "serving").mkdir()  # not a job's
    assert job_folders_prune() == 2
    assert sorted(p.name for p in work.iterdir()) == sorted(
        ["serving", f"job-{running.pk}", f"job-{just_ended.pk}"]
    )
    assert not (work / f"job-{ended.pk}").exists()


def test_a_source_archive_is_unpacked_within_the_limits(work: Path, settings: Any) -> None:
    store = get_store()
    store.put("teams/lab/code/src.tar.gz", archive({"train.py": b"print(1)\n"}))
    stage_source(store, "teams/lab/code/src.tar.gz", work / "code")
    assert (work / "code" / "train.py").read_bytes() == b"print(1)\n"
    settings.ARCHIVE_MAX_FILES = 1
    store.put("teams/lab/code/src.tar.gz", archive({"train.py": b"", "util.py": b""}))
    with pytest.raises(ArchiveRefused) as error:
        stage_source(store, "teams/lab/code/src.tar.gz", work / "again")
    assert error.value.field == "source_uri"
    assert error.value.message == (
        "source archive teams/lab/code/src.tar.gz is refused: it holds more than 1 files "
        "(ARCHIVE_MAX_FILES)"
    )


def test_a_swapped_archive_that_cannot_be_unpacked_is_reported_as_swapped(work: Path) -> None:
    approved = archive({"weights.txt": b"approved"})
    garbage = b"\x1f\x8b" + bytes(len(approved) - 2)  # as long, and not a readable archive
    get_store().put(KEY, garbage)
    with pytest.raises(ArtifactChanged, match="changed since package churn/3 was registered"):
        stage_model(source(approved))
    assert leftovers(work) == []
