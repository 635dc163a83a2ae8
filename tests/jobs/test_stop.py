"""Stopping a job: the check the pages ask (`job_stop_refusal`) and `job_stop` agree."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User

from jobs.models import Job, JobStatus, SecondaryStatus
from jobs.services.lifecycle import job_fail, job_stop, job_stop_refusal, job_transition
from jobs.services.submission import JobRequest, job_create
from studio.accounts.models import Team
from studio.errors import StudioloError
from tests.factories import make_team, make_user

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _nothing_runs(monkeypatch: pytest.MonkeyPatch, settings: Any) -> None:
    monkeypatch.setattr("jobs.tasks.run_job.apply_async", lambda *a, **k: None)
    settings.RUNTIME = "process"  # image checks pass without an engine


@pytest.fixture
def team() -> Team:
    return make_team()


def job_in(status: str, team: Team, author: User) -> Job:
    request = JobRequest(name="stoppable", instance_type="ml.local.small", image="studiolo/x:1")
    job = job_create(team=team, actor=author, request=request)
    if status == JobStatus.PENDING:
        return job
    if status == JobStatus.FAILED:
        return job_fail(job_id=job.pk, reason="boom")
    if status == JobStatus.STOPPED:
        return job_stop(job=job, actor=author)
    job = job_transition(
        job_id=job.pk, status=JobStatus.IN_PROGRESS, secondary_status=SecondaryStatus.TRAINING
    )
    if status == JobStatus.STOPPING:
        return job_stop(job=job, actor=author)
    if status == JobStatus.COMPLETED:
        return job_transition(
            job_id=job.pk, status=JobStatus.COMPLETED, secondary_status=SecondaryStatus.COMPLETED
        )
    return job


@pytest.mark.parametrize("status", [s.value for s in JobStatus])
@pytest.mark.parametrize("role", ["viewer", "scientist"])
def test_the_stop_check_and_stopping_agree(team: Team, status: str, role: str) -> None:
    job = job_in(status, team, make_user(team))
    assert job.status == status
    actor = make_user(team, role=role)
    refusal = job_stop_refusal(job=job, actor=actor)
    expected_stoppable = role == "scientist" and status in (
        JobStatus.PENDING,
        JobStatus.IN_PROGRESS,
    )
    assert (refusal is None) is expected_stoppable
    if refusal is None:
        assert job_stop(job=job, actor=actor).status in (JobStatus.STOPPED, JobStatus.STOPPING)
    else:
        with pytest.raises(StudioloError) as raised:
            job_stop(job=job, actor=actor)
        assert (type(raised.value), raised.value.message) == (type(refusal), refusal.message)


def test_an_outsider_is_told_the_job_is_not_there(team: Team) -> None:
    job = job_in(JobStatus.PENDING, team, make_user(team))
    refusal = job_stop_refusal(job=job, actor=make_user(make_team()))
    assert refusal is not None
    assert refusal.status == 404
