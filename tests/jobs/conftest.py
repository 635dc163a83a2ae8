"""Helpers for job tests. The worker fixtures (`worker`, `runtime_name`, `use_runtime`) live
in tests/workers.py, shared with the endpoint tests."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from jobs.models import TERMINAL_STATUSES, Job
from tests.workers import Worker

__all__ = ["Worker", "wait_for_job"]


def wait_for_job(
    job_id: int, *, until: Callable[[Job], bool] | None = None, timeout: float = 90
) -> Job:
    deadline = time.monotonic() + timeout
    condition = until or (lambda job: job.status in TERMINAL_STATUSES)
    while True:
        job = Job.objects.select_related("team").get(pk=job_id)
        if condition(job):
            return job
        if time.monotonic() > deadline:
            pytest.fail(
                f"job {job.name} still {job.status}/{job.secondary_status}: {job.status_message}"
            )
        time.sleep(0.1)
