"""jobs dispatches a job to the runner its kind's app registered at start-up."""

from __future__ import annotations

import pytest

from jobs.lease import Lease
from jobs.models import Job, JobKind, JobStatus
from jobs.runner import run_job
from jobs.runners import job_runner_for
from jobs.training import TrainingRunner
from tests.factories import make_team

pytestmark = pytest.mark.django_db


def _job(kind: str) -> Job:
    return Job.objects.create(
        team=make_team(), name=f"a-{kind}", kind=kind, image="x", instance_type="ml.local.small"
    )


def test_training_jobs_get_the_training_runner() -> None:
    training = _job(JobKind.TRAINING)
    assert isinstance(job_runner_for(training, Lease(training.pk)), TrainingRunner)


def test_a_job_whose_kind_has_no_runner_fails_with_a_platform_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("jobs.runners._runners", {})
    job = _job(JobKind.TRANSFORM)
    run_job(job.pk)
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED
    assert job.failure_reason.startswith("Platform error: no runner for jobs of kind 'transform'")
