"""What jobs keep on a worker's host, and its removal.

- Each job's `/opt/ml` lives in `JOBS_WORK_DIR/job-<id>/` (`jobs.runner.work_dir`); its runner
  removes it when the job ends, and `job_folders_prune` removes the folder of a job that ended
  or was deleted without its runner cleaning up.

`staging_prune` (run by the jobs reconciliation) prunes these and the staged models nothing
serves (`compute.staging`; batch transform tells it which it still needs).
"""

from __future__ import annotations

import logging
import os
import re
import shutil
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.utils import timezone

from compute.staging import staged_models_prune
from jobs.models import ACTIVE_STATUSES, Job

log = logging.getLogger(__name__)

JOB_FOLDER = re.compile(r"job-(\d+)")  # jobs.runner.work_dir
# A job folder outlives its job this long: its runner may still be cleaning up.
ENDED_GRACE = timedelta(minutes=1)


def job_folders_prune() -> int:
    """Remove the work folders of jobs that ended (a while ago) or are gone."""
    folder = Path(settings.JOBS_WORK_DIR)
    try:
        entries = [e for e in os.scandir(folder) if JOB_FOLDER.fullmatch(e.name)]
    except FileNotFoundError:
        return 0
    ids = {int(entry.name.removeprefix("job-")): entry for entry in entries}
    known = {
        pk: (status, ended_at)
        for pk, status, ended_at in Job.objects.filter(pk__in=list(ids)).values_list(
            "pk", "status", "ended_at"
        )
    }
    horizon = timezone.now() - ENDED_GRACE
    removed = 0
    for job_id, entry in ids.items():
        status, ended_at = known.get(job_id, (None, None))
        if status in ACTIVE_STATUSES or (status is not None and (ended_at or horizon) > horizon):
            continue  # running, or its runner may still be cleaning up
        log.info("removing the work folder of job %s (%s)", job_id, status or "deleted")
        shutil.rmtree(entry.path, ignore_errors=True)
        removed += 1
    return removed


def staging_prune() -> dict[str, int]:
    return {"staged_models": staged_models_prune(), "job_folders": job_folders_prune()}
