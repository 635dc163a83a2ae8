"""Celery tasks of the pipelines app: thin wrappers around the orchestrator."""

from __future__ import annotations

from celery import shared_task

# How many active executions one backstop pass advances (the oldest first).
BACKSTOP_BATCH = 200


@shared_task(
    name="pipelines.advance_execution",
    acks_late=True,  # a worker killed mid-pass leaves the message (the pass rolled back)
    reject_on_worker_lost=True,
    ignore_result=True,
    time_limit=300,
)
def advance_execution(execution_id: int) -> None:
    from pipelines.orchestrator import execution_advance

    execution_advance(execution_id)


@shared_task(name="pipelines.advance_active", ignore_result=True, time_limit=300)
def advance_active() -> None:
    """The backstop: a pass over every active execution, for the job-ended hooks and the
    task messages that were lost (a worker killed, Redis restarted)."""
    from pipelines.models import EXECUTION_ACTIVE, PipelineExecution
    from pipelines.orchestrator import execution_advance

    active = PipelineExecution.objects.filter(status__in=EXECUTION_ACTIVE).order_by("started_at")
    for execution_id in active.values_list("pk", flat=True)[:BACKSTOP_BATCH]:
        execution_advance(execution_id)


def advance_for_job(job_id: int) -> None:
    """The job-ended hook (jobs.services.lifecycle): a pass over the execution whose step ran
    the job, if any."""
    from pipelines.models import StepExecution

    execution_id = (
        StepExecution.objects.filter(job_id=job_id).values_list("execution_id", flat=True).first()
    )
    if execution_id is not None:
        advance_execution.delay(execution_id)
