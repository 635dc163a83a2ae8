"""What jobs keep on a worker's host: the work folders of ended or deleted jobs are removed, and a job's source archive is unpacked
within the archive limits."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone

from compute.archives import ArchiveRefused
from jobs.contract import stage_source
from jobs.models import Job, JobStatus
from jobs.work_folders import job_folders_prune
from studio.artifacts import get_store
from tests.compute.test_staging import archive, work
from tests.factories import make_team

pytestmark = pytest.mark.django_db
__all__ = ["work"]  # the fixture: a work folder and an artifact store of the test's own


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
