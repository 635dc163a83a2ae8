"""Celery tasks of the experiments app: thin wrappers around its services."""

from __future__ import annotations

import logging
import time

from celery import shared_task

from experiments.services.retention import RUNS_PER_PASS, purge_expired

log = logging.getLogger(__name__)

PASSES_FOR = 1200.0  # seconds of passes per task run, well inside the time limit


@shared_task(
    name="experiments.purge_expired", ignore_result=True, soft_time_limit=1800, time_limit=1900
)
def purge_expired_task() -> int:
    """Purge deleted runs and experiments past TRACKING_RETENTION_DAYS, pass after bounded
    pass while a full one suggests more are waiting (the next hourly run goes on). Returns
    how many runs and experiments went."""
    started = time.monotonic()
    purged = 0
    while True:
        result = purge_expired()
        purged += result.runs + result.experiments
        if result.runs or result.experiments:
            log.info(
                "purged %d run(s) and %d experiment(s): %d metric points, %d rollup cells, "
                "%d artifacts",
                result.runs,
                result.experiments,
                result.points,
                result.rollups,
                result.artifacts,
            )
        if result.runs < RUNS_PER_PASS or time.monotonic() - started > PASSES_FOR:
            return purged
