"""A second studio's side of tests/compute/test_two_studios.py, run as
`python -m tests.compute.peer_studio COMMAND ...` in that studio's environment (its own
STUDIOLO_HOME, database and Redis key prefix, see tests.workers.children_env): what a user and
the periodic tasks of that studio do, through the same services. Prints one JSON line.

  migrate                   the database, with a team `lab` and its scientist
  submit NAME IMAGE PK      a job that sleeps, its id set to PK (the other studio's job id)
  stop-and-reconcile PK     stop the job, wait until it is Stopped, let it age past the
                            orphan grace, then run this studio's reconciliation
"""

from __future__ import annotations

import json
import os
import sys
import time
from datetime import timedelta

SLEEPER = ["python", "-c", "import time; print('up', flush=True); time.sleep(600)"]


def main(argv: list[str]) -> dict[str, object]:
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
    django.setup()
    from django.contrib.auth.models import User
    from django.core.management import call_command
    from django.db import connection
    from django.utils import timezone

    from jobs.models import Job, JobStatus
    from jobs.reconcile import ORPHAN_GRACE, reconcile_jobs
    from jobs.services.lifecycle import job_stop
    from jobs.services.submission import JobRequest, job_create
    from studio.accounts.models import Team

    command, *args = argv
    if command == "migrate":
        call_command("migrate", verbosity=0)
        from tests.factories import make_team, make_user

        make_user(make_team("lab"), role="scientist", username="peer-scientist")
        return {"migrated": True}
    team = Team.objects.get(slug="lab")
    user = User.objects.get(username="peer-scientist")
    if command == "submit":
        name, image, pk = args
        # The next id is the other studio's: the two jobs share their name and their id.
        with connection.cursor() as cursor:
            cursor.execute("DELETE FROM sqlite_sequence WHERE name = %s", [Job._meta.db_table])
            cursor.execute(
                "INSERT INTO sqlite_sequence (name, seq) VALUES (%s, %s)",
                [Job._meta.db_table, int(pk) - 1],
            )
        request = JobRequest(
            name=name,
            instance_type="ml.local.small",
            image=image,
            container_entrypoint=SLEEPER,
        )
        job = job_create(team=team, actor=user, request=request)
        return {"id": job.pk}
    if command == "stop-and-reconcile":
        job = Job.objects.get(pk=int(args[0]))
        job_stop(job=job, actor=user)
        deadline = time.monotonic() + 90
        while Job.objects.get(pk=job.pk).status != JobStatus.STOPPED:
            if time.monotonic() > deadline:
                raise SystemExit(f"job {job.pk} not Stopped: {Job.objects.get(pk=job.pk).status}")
            time.sleep(0.2)
        past = timezone.now() - ORPHAN_GRACE - timedelta(seconds=1)
        Job.objects.filter(pk=job.pk).update(ended_at=past)
        return {"status": JobStatus.STOPPED, "reconciled": reconcile_jobs()}
    raise SystemExit(f"unknown command {command!r}")


if __name__ == "__main__":
    sys.stdout.write(json.dumps(main(sys.argv[1:])) + "\n")
