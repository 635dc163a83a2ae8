"""A worker's lease on a job: renewed for as long as it is held, and fencing a worker that
lost it (its status changes and log lines are refused); a job whose log has holes is never
Completed. Real database, real threads; the end-to-end cases (stalled and killed workers) are
in tests/faults/."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from jobs.lease import Lease, LeaseLost
from jobs.logs import LogWriter
from jobs.models import Job, JobLogLine, JobStatus, SecondaryStatus
from jobs.services.lifecycle import IncompleteLog, job_fail, job_transition
from tests.factories import make_team

# transaction=True: the lease renews from a thread of its own, with its own connection.
pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def job() -> Job:
    return Job.objects.create(
        team=make_team("lab"),
        name="leased",
        image="example/trainer:1",
        instance_type="ml.local.small",
        output_path="file:///tmp/out",
    )


def expire(job: Job) -> None:
    """What time does to a lease nobody renews."""
    Job.objects.filter(pk=job.pk).update(lease_expires_at=timezone.now() - timedelta(seconds=1))


def lines(job: Job) -> list[tuple[int, str]]:
    return list(JobLogLine.objects.filter(job=job).order_by("seq").values_list("seq", "line"))


def test_a_held_lease_outlives_its_duration_and_keeps_others_out(job: Job, settings: Any) -> None:
    settings.JOB_LEASE_SECONDS = 2
    holder = Lease(job.pk)
    assert holder.take()
    try:
        deadline = time.monotonic() + 3 * settings.JOB_LEASE_SECONDS
        while time.monotonic() < deadline:
            assert not Lease(job.pk).take(), "a renewed lease was taken over"
            time.sleep(0.2)
        assert not holder.lost.is_set()
    finally:
        holder.release()
    successor = Lease(job.pk)
    assert successor.take(), "a released lease is free"
    successor.release()


def test_a_take_over_fences_the_previous_owner_out_of_every_write(job: Job) -> None:
    stale = Lease(job.pk)
    assert stale.take()
    stale._released.set()  # stalled: it renews no more
    assert stale._renewer is not None
    stale._renewer.join()
    expire(job)
    owner = Lease(job.pk)
    assert owner.take()
    assert owner.generation == stale.generation + 1

    with pytest.raises(LeaseLost):
        job_transition(
            job_id=job.pk,
            status=JobStatus.IN_PROGRESS,
            secondary_status=SecondaryStatus.TRAINING,
            lease=stale,
        )
    with pytest.raises(LeaseLost):
        job_fail(job_id=job.pk, reason="stale", lease=stale)
    assert not stale.renew()

    stale_log = LogWriter(Job.objects.get(pk=job.pk), fence=stale.mine())
    stale_log.feed("stdout", b"from the stale worker\n")
    stale_log.close()
    assert stale_log.fenced
    assert not stale_log.complete

    log = LogWriter(Job.objects.get(pk=job.pk), fence=owner.mine())
    log.feed("stdout", b"from the owner\n")
    log.close()
    assert log.complete
    assert lines(job) == [(1, "from the owner")]
    job_transition(
        job_id=job.pk,
        status=JobStatus.IN_PROGRESS,
        secondary_status=SecondaryStatus.TRAINING,
        lease=owner,
    )
    owner.release()


def test_a_job_whose_log_has_a_hole_is_never_completed(job: Job) -> None:
    log = LogWriter(job)
    log.feed("stdout", b"one\ntwo\nthree\n")
    log.close()
    JobLogLine.objects.filter(job=job, seq=2).delete()  # what a crashed writer leaves
    job_transition(
        job_id=job.pk, status=JobStatus.IN_PROGRESS, secondary_status=SecondaryStatus.TRAINING
    )

    with pytest.raises(IncompleteLog, match="2 lines stored, numbered up to 3"):
        job_transition(
            job_id=job.pk, status=JobStatus.COMPLETED, secondary_status=SecondaryStatus.COMPLETED
        )
    assert Job.objects.get(pk=job.pk).status == JobStatus.IN_PROGRESS
    job_fail(job_id=job.pk, reason="Platform error: the job's log is incomplete")
    assert Job.objects.get(pk=job.pk).status == JobStatus.FAILED


def test_a_whole_log_completes(job: Job) -> None:
    log = LogWriter(job)
    log.feed("stdout", b"one\ntwo\n")
    log.system("done")
    log.close()
    job_transition(
        job_id=job.pk, status=JobStatus.IN_PROGRESS, secondary_status=SecondaryStatus.TRAINING
    )
    job_transition(
        job_id=job.pk, status=JobStatus.COMPLETED, secondary_status=SecondaryStatus.COMPLETED
    )
    assert [seq for seq, _ in lines(job)] == [1, 2, 3]
