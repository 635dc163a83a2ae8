"""A worker's lease on a job: who drives it, renewed for as long as it does, and fenced.

The lease is taken when a worker's task starts driving a job and renewed by a thread of
its own every `renew_every()` seconds until it is released, whatever the runner is doing
(downloading inputs, following the container, packing the model). A lease that runs out
means its worker died, or stalled: reconciliation hands the job to another worker, whose
`take` increments the job's `lease_generation`.

That number is the fencing token. Every write a runner makes about its job (status
transitions, log lines and their count, uploads' records) is conditional on the generation
it took (`Job.lease_generation = <ours>`, in the same statement or transaction), so a
worker that lost its lease (stalled past it, then woke up) cannot write a single row after
the new owner took over: its writes match no row and it stops (`LeaseLost`).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from datetime import timedelta

from django.conf import settings
from django.db import DatabaseError, close_old_connections, connection
from django.db.models import F, Q
from django.utils import timezone

from jobs.models import Job
from studio.errors import Conflict

log = logging.getLogger(__name__)

RENEW_AT_MOST_EVERY = 5.0


class LeaseLost(Conflict):
    """Another worker owns the job now; this one must let go without touching it."""


def lease_seconds() -> int:
    """How long a silent worker keeps its job (JOB_LEASE_SECONDS; tests shorten it)."""
    return int(settings.JOB_LEASE_SECONDS)


def renew_every() -> float:
    # Three renewals per lease: a renewal delayed by a busy database or a long pause of the
    # process (up to two periods) still lands before the lease runs out.
    return min(RENEW_AT_MOST_EVERY, lease_seconds() / 3)


class Lease:
    """This worker's hold on one job. `take` it, then `hold()` keeps it renewed."""

    def __init__(self, job_id: int) -> None:
        self.job_id = job_id
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.generation = 0  # the fencing token, once taken
        self.lost = threading.Event()  # set when renewing found another owner
        self._released = threading.Event()
        self._renewer: threading.Thread | None = None

    def take(self) -> bool:
        """Take the job if nobody holds it or its holder's lease ran out; starts renewing."""
        now = timezone.now()
        taken = (
            Job.objects.filter(pk=self.job_id)
            .filter(Q(lease_owner="") | Q(lease_expires_at__lt=now))
            .update(
                lease_owner=self.owner,
                lease_generation=F("lease_generation") + 1,
                lease_expires_at=now + timedelta(seconds=lease_seconds()),
            )
        )
        if not taken:
            return False
        generation = (
            Job.objects.filter(pk=self.job_id, lease_owner=self.owner)
            .values_list("lease_generation", flat=True)
            .first()
        )
        if generation is None:  # taken from us at once: we stalled a whole lease already
            return False
        self.generation = generation
        self._renewer = threading.Thread(
            target=self._renew_loop, name=f"job-{self.job_id}-lease", daemon=True
        )
        self._renewer.start()
        return True

    def mine(self) -> Q:
        """The condition every write about the job carries: we still hold the lease."""
        return Q(pk=self.job_id, lease_generation=self.generation)

    def check(self) -> None:
        """Raise LeaseLost if the renewer found another owner (cheap: no query)."""
        if self.lost.is_set():
            raise LeaseLost(f"job {self.job_id}: another worker took it over")

    def renew(self) -> bool:
        expires = timezone.now() + timedelta(seconds=lease_seconds())
        return bool(Job.objects.filter(self.mine()).update(lease_expires_at=expires))

    def release(self) -> None:
        """Stop renewing and let go (only if the lease is still ours)."""
        self._released.set()
        if self._renewer is not None:
            self._renewer.join(timeout=30)
        if self.generation and not self.lost.is_set():
            Job.objects.filter(self.mine()).update(lease_owner="", lease_expires_at=None)

    def _renew_loop(self) -> None:
        last_renewed = time.monotonic()
        try:
            while not self._released.wait(renew_every()):
                close_old_connections()
                try:
                    if not self.renew():
                        log.warning("job %s: its lease was taken over; letting go", self.job_id)
                        self.lost.set()
                        return
                    last_renewed = time.monotonic()
                except DatabaseError as exc:
                    # The database may be back before the lease runs out; past that, another
                    # worker may own the job, so this one must stop writing.
                    log.warning("job %s: could not renew its lease: %s", self.job_id, exc)
                    connection.close()
                    if time.monotonic() - last_renewed > lease_seconds():
                        self.lost.set()
                        return
        finally:
            connection.close()
