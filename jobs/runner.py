"""Driving one job from Pending to a final state. Called by the `jobs.run_job` task.

The runner always reaches a final state or hands the job back: every path ends in
Completed, Failed or Stopped, except losing the lease to another worker (which then owns
the job). A worker that dies mid-job leaves the container running; reconciliation gives the
job to another worker whose runner re-attaches to the container by its labels.

The lease (jobs/lease.py) is taken before anything else and renewed by its own thread until
the runner lets go, through every phase: a slow download or a long packing never looks like
a dead worker. Every write the runner makes about the job carries the lease's generation,
so a runner that lost the job (stalled past its lease) writes nothing more.

What happens between taking the job and ending it depends on its kind: `run_job` asks the
runner registry (`jobs.runners`) for the kind's runner, built on `JobRunner` here, which
holds what every kind shares (transitions under the lease, the log, the watchdog for stop
requests and MaxRuntimeInSeconds, clean-up). Training's is `jobs.training.TrainingRunner`.
"""

from __future__ import annotations

import logging
import shutil
import threading
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any, ClassVar

from django.conf import settings
from django.db import close_old_connections, connection
from django.utils import timezone

from compute.labels import (
    KIND_JOB,
    LABEL_INSTANCE,
    LABEL_JOB_ID,
    LABEL_KIND,
    LABEL_TEAM,
    ROLE_JOB,
    engine_name,
    instance_label,
)
from compute.networks import job_network_release
from compute.runtime import get_runtime
from compute.runtime.base import ContainerNotFound, ContainerState, Runtime
from jobs.lease import Lease, LeaseLost
from jobs.logs import LogWriter, SkipKey
from jobs.models import TERMINAL_STATUSES, Job, JobStatus, SecondaryStatus
from jobs.runners import job_runner_for
from jobs.services.lifecycle import IllegalTransition, job_fail, job_transition
from studio.errors import StudioloError

log = logging.getLogger(__name__)

WATCH_EVERY = 0.5


def container_name(job: Job) -> str:
    return engine_name(ROLE_JOB, job.pk)


def job_labels(job: Job) -> dict[str, str]:
    return {
        LABEL_KIND: KIND_JOB,
        LABEL_JOB_ID: str(job.pk),
        LABEL_TEAM: job.team.slug,
        LABEL_INSTANCE: instance_label(),
    }


def work_dir(job: Job) -> Path:
    return Path(settings.JOBS_WORK_DIR) / f"job-{job.pk}"


def run_job(job_id: int) -> None:
    job = Job.objects.only("status").get(pk=job_id)
    if job.status in TERMINAL_STATUSES:
        return
    lease = Lease(job_id)
    if not lease.take():
        log.info("job %s is driven by another worker; nothing to do", job_id)
        return
    try:
        # Read once ours: what an earlier owner wrote up to the take-over is all there is.
        job = Job.objects.select_related("team").get(pk=job_id)
        runner = job_runner_for(job, lease)
        if runner is None:
            job_fail(
                job_id=job.pk,
                reason=f"Platform error: no runner for jobs of kind {job.kind!r} "
                "(the app that runs them is not installed)",
                lease=lease,
            )
            return
        runner.run()
    except LeaseLost:
        log.warning("job %s: lease lost to another worker; letting go", job.name)
        return
    finally:
        lease.release()


class JobRunner:
    """What every kind of job's runner shares. A subclass drives the job in `run` and says
    how a stop request reaches its container (`_stop_container`)."""

    # The status message of each secondary status a subclass moves to without saying one.
    messages: ClassVar[dict[str, str]] = {}

    def __init__(self, job: Job, lease: Lease) -> None:
        self.job = job
        self.lease = lease
        self.runtime: Runtime = get_runtime()
        self.container_id: str | None = None
        self.writer: LogWriter | None = None
        self._stop_sent = threading.Event()
        self._done = threading.Event()
        self._lease_lost = lease.lost  # set by the lease's renewer

    def run(self) -> None:
        raise NotImplementedError

    def _stop_container(self, reason: str) -> None:
        """Called by the watchdog on a stop request or when the runtime limit passes."""
        raise NotImplementedError

    # --- transitions and the log ------------------------------------------------------------

    def _move(self, status: str, secondary: str, message: str | None = None, **fields: Any) -> None:
        self.job = job_transition(
            job_id=self.job.pk,
            status=status,
            secondary_status=secondary,
            message=message if message is not None else self.messages.get(secondary, ""),
            lease=self.lease,
            **fields,
        )

    def _fail_job(self, reason: str, **fields: Any) -> None:
        job_fail(job_id=self.job.pk, reason=reason, lease=self.lease, **fields)

    def _open_log(self, *, skip_lines: Mapping[SkipKey, int] | None = None) -> LogWriter:
        self.writer = LogWriter(self.job, skip_lines=skip_lines, fence=self.lease.mine())
        return self.writer

    def _writer(self) -> LogWriter:
        if self.writer is None:
            raise RuntimeError("the job's log is closed")
        return self.writer

    def _close_log(self) -> None:
        """All lines are written and published before the final status goes out; a log that
        could not be stored whole stops the job from ending as if it had been."""
        if self.writer is None:
            return
        writer, self.writer = self.writer, None
        writer.close()
        if writer.fenced:
            self.lease.lost.set()
            self.lease.check()
        if not writer.complete:
            raise StudioloError(
                f"Platform error: the job's log could not be stored whole ({writer.error})"
            )

    # --- the container ------------------------------------------------------------------------

    def _find_container(self) -> ContainerState | None:
        found = self.runtime.find(
            {LABEL_JOB_ID: str(self.job.pk), LABEL_INSTANCE: instance_label()}
        )
        return found[0] if found else None

    def _watch(self) -> None:
        """Enforces MaxRuntimeInSeconds and carries out stop requests (the lease renews
        itself)."""
        try:
            while not self._done.wait(WATCH_EVERY):
                close_old_connections()
                if self._lease_lost.is_set():
                    return
                job = Job.objects.only("status", "training_started_at", "max_runtime_seconds").get(
                    pk=self.job.pk
                )
                if self._stop_sent.is_set():
                    continue
                if job.status == JobStatus.STOPPING:
                    self._stop_container("Stop requested: stopping the container")
                elif (
                    job.training_started_at
                    and timezone.now() - job.training_started_at
                    > timedelta(seconds=job.max_runtime_seconds)
                ):
                    try:
                        job_transition(
                            job_id=self.job.pk,
                            status=JobStatus.STOPPING,
                            secondary_status=SecondaryStatus.MAX_RUNTIME_EXCEEDED,
                            message=f"MaxRuntimeInSeconds ({job.max_runtime_seconds} s) exceeded: stopping",
                            lease=self.lease,
                        )
                    except IllegalTransition:
                        continue
                    self._stop_container(
                        f"MaxRuntimeInSeconds ({job.max_runtime_seconds} s) exceeded"
                    )
        except LeaseLost:
            return
        except Exception:
            log.exception("job %s: watchdog failed", self.job.pk)
        finally:
            connection.close()

    def _cleanup(self) -> None:
        if self.lease.lost.is_set():
            return  # the container and the folder are the new owner's
        if self.container_id is not None:
            try:
                self.runtime.remove(self.container_id)
            except (ContainerNotFound, StudioloError):
                log.warning("job %s: could not remove container %s", self.job.pk, self.container_id)
        if self.job.enable_network:
            try:
                job_network_release(self.runtime, self.job.pk)
            except StudioloError:  # the reconciliation removes it later
                log.warning("job %s: could not remove its network", self.job.pk)
        self._cleanup_folder()

    def _cleanup_folder(self) -> None:
        shutil.rmtree(work_dir(self.job), ignore_errors=True)
