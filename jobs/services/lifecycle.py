"""The one writer of a job's status.

`job_transition` is a compare-and-swap: `UPDATE ... WHERE status = <expected>` with a
row-count check, so a worker finishing a job and a person stopping it at the same moment
leave one consistent result. A worker passes its lease: the write then also requires the
lease generation it took (jobs/lease.py), so a stale worker (one that lost the job to
another) cannot overwrite what the current owner wrote. A job is Completed only with its
whole log stored.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser, User
from django.db import transaction
from django.db.models import Count, Max
from django.utils import timezone

from experiments.models import RunStatus
from experiments.services import run_end
from jobs.lease import Lease, LeaseLost
from jobs.models import (
    ACTIVE_STATUSES,
    ALLOWED_TRANSITIONS,
    RUNNING_PHASES,
    TERMINAL_STATUSES,
    Job,
    JobKind,
    JobLogLine,
    JobStatus,
    JobTransition,
    SecondaryStatus,
)
from studio.accounts.roles import Action
from studio.accounts.services import permission_refusal, require_permission
from studio.audit.services import audit_record
from studio.errors import Conflict, StudioloError
from studio.events import publish_team_event
from studio.webhooks.services import webhooks_emit

Actor = AbstractBaseUser | AnonymousUser | None
SYSTEM = "system"
FAILURE_REASON_LIMIT = 1024  # SageMaker's FailureReason maximum


log = logging.getLogger(__name__)

# Called with a job's id once the transaction that ended it (Completed, Failed, Stopped) has
# committed. Apps above jobs (pipelines) register theirs from `AppConfig.ready()`, so jobs
# tells them without importing them.
JobEndedHook = Callable[[int], None]
_ended_hooks: dict[str, JobEndedHook] = {}


def job_ended_hook_register(name: str, hook: JobEndedHook) -> None:
    """Register (or replace) the hook `name`, called after every job's end is committed."""
    _ended_hooks[name] = hook


def _job_ended(job_id: int) -> None:
    for name, hook in list(_ended_hooks.items()):
        try:
            hook(job_id)
        except Exception:  # a hook's failure never undoes or hides the job's end
            log.exception("job %s: the job-ended hook %s failed", job_id, name)


RUN_STATUS_FOR: dict[str, RunStatus] = {
    JobStatus.COMPLETED: RunStatus.FINISHED,
    JobStatus.FAILED: RunStatus.FAILED,
    JobStatus.STOPPED: RunStatus.KILLED,
}


class IllegalTransition(Conflict):
    pass


class IncompleteLog(Conflict):
    """The job's log has holes: it cannot be marked Completed."""


def job_group(job_id: int) -> str:
    """Channels group of one job's live logs and status."""
    return f"job.{job_id}"


def job_transition(
    *,
    job_id: int,
    status: str,
    secondary_status: str,
    message: str = "",
    actor: Actor = None,
    failure_reason: str | None = None,
    lease: Lease | None = None,
    **fields: Any,
) -> Job:
    """Move a job to (status, secondary_status), recording who, when and why.

    Raises IllegalTransition when the move is not allowed from the job's current status
    (including when someone else moved it first), LeaseLost when `lease` (the caller's, a
    worker's) is no longer the job's, IncompleteLog for Completed with lines missing.
    `fields` are other columns written in the same UPDATE (exit code, artifact URIs...).
    """
    with transaction.atomic():
        job = Job.objects.select_for_update().get(pk=job_id)
        fence = {"lease_generation": lease.generation} if lease is not None else {}
        if lease is not None and job.lease_generation != lease.generation:
            lease.lost.set()
            raise LeaseLost(f"job {job.name}: another worker took it over", field="status")
        current = job.status
        same_status = status == current and current in ACTIVE_STATUSES
        if not same_status and status not in ALLOWED_TRANSITIONS[current]:
            raise IllegalTransition(
                f"job {job.name}: cannot go from {current} to {status}", field="status"
            )
        now = timezone.now()
        values: dict[str, Any] = {
            "status": status,
            "secondary_status": secondary_status,
            "status_message": message[:512],
            "updated_at": now,
            **fields,
        }
        if failure_reason is not None:
            values["failure_reason"] = failure_reason[:FAILURE_REASON_LIMIT]
        if status in TERMINAL_STATUSES:
            values["ended_at"] = now
        if status == JobStatus.COMPLETED:
            _require_complete_log(job)
        # Training (or transforming) time, which MaxRuntimeInSeconds limits, starts once.
        if secondary_status in RUNNING_PHASES and job.training_started_at is None:
            values["training_started_at"] = now
        if job.secondary_status in RUNNING_PHASES and secondary_status not in RUNNING_PHASES:
            values.setdefault("training_ended_at", now)
        # Compare-and-swap on the status we read (the row lock makes it certain on
        # PostgreSQL; on SQLite the IMMEDIATE transaction serialises writers).
        updated = Job.objects.filter(pk=job_id, status=current, **fence).update(**values)
        if updated != 1:
            raise IllegalTransition(f"job {job.name}: status changed concurrently", field="status")
        user = actor if isinstance(actor, User) else None
        JobTransition.objects.create(
            job_id=job_id,
            from_status=current,
            to_status=status,
            secondary_status=secondary_status,
            message=message[:512],
            actor_name=user.get_username() if user else SYSTEM,
        )
        job.refresh_from_db()
        if status in TERMINAL_STATUSES and job.run_id is not None and job.run is not None:
            run_end(run=job.run, status=RUN_STATUS_FOR[status])
        if status != current and status in TERMINAL_STATUSES:
            ended_id = job.pk
            transaction.on_commit(lambda: _job_ended(ended_id))
        if status != current:
            webhooks_emit(
                team=job.team,
                event_type="job.status_changed",
                payload={**job_status_payload(job), "from": current},
            )
            audit_record(
                actor=actor,
                action=f"job.{status.lower()}",
                target=job,
                team=job.team,
                details={
                    "from": current,
                    "secondary_status": secondary_status,
                    "message": message[:512],
                    **({"failure_reason": job.failure_reason} if job.failure_reason else {}),
                },
            )
        actor_name = user.get_username() if user else SYSTEM
        publish_team_event(
            team_id=job.team_id,
            team_slug=job.team.slug,
            event="job.status",
            data=job_status_payload(job, actor=actor_name),
        )
        _publish_job(job, actor_name)
    return job


def _require_complete_log(job: Job) -> None:
    """Lines are numbered 1..log_line_count with no gap and no repeat (the unique (job, seq)
    index forbids repeats), each batch counted with its INSERT: a writer that lost lines, or
    one cut off by a take-over, leaves a count or a numbering that does not add up."""
    stored = JobLogLine.objects.filter(job_id=job.pk).aggregate(lines=Count("pk"), last=Max("seq"))
    lines, last = stored["lines"], stored["last"] or 0
    if not lines == last == job.log_line_count:
        raise IncompleteLog(
            f"Platform error: the job's log is incomplete ({lines} lines stored, numbered up to "
            f"{last}, {job.log_line_count} written); it cannot be marked Completed",
            field="status",
        )


def job_status_payload(job: Job, *, actor: str = SYSTEM) -> dict[str, Any]:
    return {
        "id": job.pk,
        "actor": actor,
        "at": job.updated_at.isoformat() if job.updated_at else None,
        "training_started_at": job.training_started_at.isoformat()
        if job.training_started_at
        else None,
        "name": job.name,
        "status": job.status,
        "secondary_status": job.secondary_status,
        "message": job.status_message,
        "failure_reason": job.failure_reason,
        "terminal": job.status in TERMINAL_STATUSES,
        "progress": job_progress_payload(job),
    }


def job_progress_payload(job: Job) -> dict[str, int] | None:
    """Records and files done of a batch transform (None for other kinds of job)."""
    if job.kind != JobKind.TRANSFORM:
        return None
    return {
        "records_done": job.records_done,
        "records_total": job.records_total,
        "files_done": job.files_done,
        "files_total": job.files_total,
    }


def _publish_job(job: Job, actor: str) -> None:
    from jobs.logs import publish_status  # the log stream owns the job's channel group

    payload = job_status_payload(job, actor=actor)
    transaction.on_commit(lambda: publish_status(job.pk, payload))


def job_fail(
    *,
    job_id: int,
    reason: str,
    secondary_status: str = SecondaryStatus.FAILED,
    lease: Lease | None = None,
    **fields: Any,
) -> Job:
    """Fail an active job from whatever state it is in (platform errors, lost containers)."""
    job = Job.objects.get(pk=job_id)
    if job.status in TERMINAL_STATUSES:
        return job
    status = JobStatus.FAILED
    return job_transition(
        job_id=job_id,
        status=status,
        secondary_status=secondary_status,
        message=reason.splitlines()[0][:512] if reason else "",
        failure_reason=reason,
        lease=lease,
        **fields,
    )


PROGRESS_FIELDS = frozenset({"records_done", "records_total", "files_done", "files_total"})


def job_progress(*, job_id: int, message: str, lease: Lease | None = None, **counters: int) -> None:
    """Update the status message (download progress...) and a transform's progress counters
    (`PROGRESS_FIELDS`): no transition row, no audit."""
    unknown = set(counters) - PROGRESS_FIELDS
    if unknown:
        raise ValueError(f"not progress counters: {', '.join(sorted(unknown))}")
    fence = {"lease_generation": lease.generation} if lease is not None else {}
    updated = Job.objects.filter(pk=job_id, status__in=ACTIVE_STATUSES, **fence).update(
        status_message=message[:512], updated_at=timezone.now(), **counters
    )
    if updated:
        job = Job.objects.select_related("team").get(pk=job_id)
        from jobs.logs import publish_status

        publish_status(job_id, job_status_payload(job))


def job_stop_refusal(*, job: Job, actor: Actor) -> StudioloError | None:
    """Why `actor` may not stop `job` now, or None when they may: the role, and a job that
    is waiting or running (not finished, not stopping already). The one statement of these
    rules: `job_stop` raises the answer, the UI asks it whether to offer Stop."""
    return permission_refusal(user=actor, team=job.team, action=Action.STOP_JOB) or (
        _stop_status_refusal(job)
    )


def _stop_status_refusal(job: Job) -> IllegalTransition | None:
    if job.status in TERMINAL_STATUSES or job.status == JobStatus.STOPPING:
        return IllegalTransition(
            f"job {job.name} is {job.status}; only active jobs can be stopped", field="status"
        )
    return None


def job_stop(*, job: Job, actor: Actor) -> Job:
    """Ask a job to stop. A job no worker has picked up stops at once; a running one goes
    to Stopping and its worker stops the container (SIGTERM, then SIGKILL after the grace
    period), uploads what the script saved, and marks it Stopped."""
    require_permission(user=actor, team=job.team, action=Action.STOP_JOB)
    for _attempt in range(3):  # the worker may move the job between our read and write
        job.refresh_from_db()
        refusal = _stop_status_refusal(job)
        if refusal is not None:
            raise refusal
        target = JobStatus.STOPPED if job.status == JobStatus.PENDING else JobStatus.STOPPING
        secondary = (
            SecondaryStatus.STOPPED if target == JobStatus.STOPPED else SecondaryStatus.STOPPING
        )
        Job.objects.filter(pk=job.pk, stop_requested_at__isnull=True).update(
            stop_requested_at=timezone.now()
        )
        try:
            return job_transition(
                job_id=job.pk,
                status=target,
                secondary_status=secondary,
                message="Stop requested",
                actor=actor,
            )
        except IllegalTransition:
            continue
    raise IllegalTransition(
        f"job {job.name}: could not stop, its status keeps changing", field="status"
    )
