"""Matching jobs to containers, periodically (beat: `jobs.reconcile`).

- An active job whose worker's lease ran out is handed to a worker again; its runner
  re-attaches to the container (still running, or exited with its output intact) or fails
  the job with a clear reason when the container is gone. No job stays InProgress forever.
- A Pending job whose task never reached the broker (Redis away at submission) is
  dispatched now; one that sat unclaimed for a long time is queued again (its message may
  have been lost with a Redis that kept nothing). A duplicate is harmless: the lease decides.
- A container of this studio whose job is over or unknown is removed, and so is the network
  of a job that is over (compute/networks.py), if its runner could not.
- Staged folders nothing needs (a deleted endpoint's model, a job folder its runner left
  behind) are removed (jobs/work_folders.py, compute/staging.py).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.db.models import Q
from django.utils import timezone

from compute.instance_types import instance_type_get
from compute.labels import KIND_JOB, LABEL_INSTANCE, LABEL_JOB_ID, LABEL_KIND, instance_label
from compute.networks import job_networks_reconcile
from compute.runtime import get_runtime
from jobs.models import ACTIVE_STATUSES, Job, JobStatus
from jobs.services.submission import job_dispatch
from jobs.work_folders import staging_prune
from studio.errors import StudioloError

log = logging.getLogger(__name__)

PENDING_REQUEUE_AFTER = timedelta(minutes=10)
# The submission's own dispatch, right after its commit, is left this long to happen.
UNDISPATCHED_AFTER = timedelta(seconds=5)
ORPHAN_GRACE = timedelta(minutes=1)


def reconcile_jobs() -> dict[str, int]:
    from jobs.tasks import run_job

    now = timezone.now()
    counts = {"redispatched": 0, "dispatched": 0, "requeued": 0, "removed": 0}
    stale = Job.objects.filter(status__in=[JobStatus.IN_PROGRESS, JobStatus.STOPPING]).filter(
        Q(lease_expires_at__lt=now)
        | Q(lease_expires_at__isnull=True, updated_at__lt=now - ORPHAN_GRACE)
    )
    for job in stale:
        log.warning("job %s: its worker is gone; handing it to another", job.name)
        run_job.apply_async(args=[job.pk], queue=_queue(job))
        counts["redispatched"] += 1
    undispatched = Job.objects.filter(
        status=JobStatus.PENDING,
        dispatched_at__isnull=True,
        created_at__lt=now - UNDISPATCHED_AFTER,
    )
    for job in undispatched:
        log.warning("job %s: its task never reached the work queue; dispatching it", job.name)
        counts["dispatched"] += job_dispatch(job_id=job.pk, queue=_queue(job))
    waiting = Job.objects.filter(
        status=JobStatus.PENDING, updated_at__lt=now - PENDING_REQUEUE_AFTER
    )
    for job in waiting:
        Job.objects.filter(pk=job.pk, status=JobStatus.PENDING).update(updated_at=now)
        run_job.apply_async(args=[job.pk], queue=_queue(job))
        counts["requeued"] += 1
    counts["removed"] = _remove_orphans(now)
    counts["networks_removed"] = job_networks_reconcile(
        get_runtime(), running=_is_active, older_than=ORPHAN_GRACE
    )
    counts.update(staging_prune())
    return counts


def _is_active(job_id: int) -> bool:
    return Job.objects.filter(pk=job_id, status__in=ACTIVE_STATUSES).exists()


def _queue(job: Job) -> str:
    try:
        return instance_type_get(job.instance_type).queue
    except StudioloError:
        return "default"  # the instance type was removed from the configuration


def _remove_orphans(now: datetime) -> int:
    runtime = get_runtime()
    removed = 0
    for state in runtime.find({LABEL_KIND: KIND_JOB, LABEL_INSTANCE: instance_label()}):
        try:
            job_id = int(state.labels.get(LABEL_JOB_ID, ""))
        except ValueError:
            job_id = -1
        job = Job.objects.filter(pk=job_id).only("status", "ended_at").first()
        if job is not None and job.status in ACTIVE_STATUSES:
            continue
        if job is not None and job.ended_at and now - job.ended_at < ORPHAN_GRACE:
            continue  # its runner is cleaning up right now
        log.warning(
            "removing container %s: its job is %s", state.name, job.status if job else "unknown"
        )
        runtime.remove(state.id)
        removed += 1
    return removed
