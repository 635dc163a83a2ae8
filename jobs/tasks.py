"""Celery tasks of the jobs app: thin wrappers around the runner and reconciliation."""

from __future__ import annotations

from celery import shared_task


@shared_task(
    name="jobs.run_job",
    acks_late=True,  # a worker that dies mid-job leaves the message for another
    reject_on_worker_lost=True,
    ignore_result=True,
)
def run_job(job_id: int) -> None:
    from jobs.runner import run_job as drive

    drive(job_id)


@shared_task(name="jobs.reconcile", ignore_result=True, time_limit=120)
def reconcile() -> None:
    from jobs.reconcile import reconcile_jobs

    reconcile_jobs()
