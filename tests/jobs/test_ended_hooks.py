"""Apps above jobs learn that a job ended through `job_ended_hook_register`: each hook is
called with the job's id once the transaction that ended it commits, never before, never for
a move that does not end the job, and a failing hook neither undoes the end nor stops the
others."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from jobs.models import JobStatus, SecondaryStatus
from jobs.services import lifecycle
from jobs.services.lifecycle import job_ended_hook_register, job_fail, job_transition
from jobs.services.submission import JobRequest, job_create
from tests.factories import make_team, make_user

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _nothing_runs(monkeypatch: pytest.MonkeyPatch, settings: Any) -> None:
    monkeypatch.setattr("jobs.tasks.run_job.apply_async", lambda *a, **k: None)
    settings.RUNTIME = "process"  # image checks pass without an engine


@pytest.fixture
def ended() -> Iterator[list[int]]:
    calls: list[int] = []
    saved = dict(lifecycle._ended_hooks)

    def broken(job_id: int) -> None:
        raise RuntimeError("a hook that fails")

    job_ended_hook_register("test.broken", broken)
    job_ended_hook_register("test.record", calls.append)
    yield calls
    lifecycle._ended_hooks.clear()
    lifecycle._ended_hooks.update(saved)


def test_a_hook_hears_of_a_job_ending_once_it_is_committed(
    ended: list[int], django_capture_on_commit_callbacks: Callable[..., Any]
) -> None:
    team = make_team()
    request = JobRequest(name="hooked", instance_type="ml.local.small", image="studiolo/x:1")
    job = job_create(team=team, actor=make_user(team), request=request)
    with django_capture_on_commit_callbacks(execute=True):
        job_transition(
            job_id=job.pk, status=JobStatus.IN_PROGRESS, secondary_status=SecondaryStatus.TRAINING
        )
    assert ended == []  # running is not an end
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        job_fail(job_id=job.pk, reason="boom")
    assert ended == []  # not before the commit
    for callback in callbacks:
        callback()
    assert ended == [job.pk]  # the broken hook did not stop this one
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED
