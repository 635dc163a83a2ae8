"""A job of N instances: N containers, `algo-1` ... `algo-N`, from Pending to a final state.

Training and processing jobs run this way (their runners, `jobs.training.TrainingRunner`
and `jobs.processing.ProcessingRunner`, fill in the hooks below); batch transform drives
its serving container itself (`transform.runner`).

1. Starting, Downloading: every instance gets a folder of its own, mounted as its
   `/opt/ml` (`_prepare_host`: the kind's layout, its inputs, sharded where asked, and its
   configuration files naming the instance and its peers).
2. The running phase (`running_status`): the job's own bridge network is made (internal,
   with no route out, unless the job asked for network access: `compute.networks`), then
   the N containers start at once, each with its host name, so the instances reach each
   other as `algo-1` ... `algo-N`, as on SageMaker. One instance without network access
   gets no network at all (its host name, `algo-1`, resolves to its own loopback). Every instance's output is followed into
   the job's log, labelled with its host. The first instance that fails fails the job: the
   others are stopped at once (SIGTERM, then SIGKILL after the stop grace) and the job's
   failure reason is that instance's. A stop request and MaxRuntimeInSeconds stop them all.
3. The end: once every container exited, the kind's results are collected (`_collect`),
   then Completed, Stopped or Failed.

A worker that dies leaves the containers running; the job's next runner re-attaches to all
of them by their labels. One that died while starting them (some started, some not) is
started over: what it started is removed first.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from django.conf import settings
from django.db.models import Count

from compute.frameworks import CONTAINER_UID, is_framework_image
from compute.instance_types import instance_type_get
from compute.labels import (
    LABEL_HOST,
    LABEL_INSTANCE,
    LABEL_JOB_ID,
    ROLE_JOB,
    engine_name,
    instance_label,
)
from compute.networks import job_network_ensure, job_network_release
from compute.runtime.base import (
    ContainerAlreadyExists,
    ContainerNotFound,
    ContainerSpec,
    ContainerState,
    Mount,
)
from experiments.models import Run
from jobs.lease import Lease, LeaseLost
from jobs.logs import LogWriter, SkipKey
from jobs.models import TERMINAL_STATUSES, Job, JobLogLine, JobStatus, SecondaryStatus
from jobs.runner import JobRunner, container_name, job_labels, work_dir
from jobs.services.lifecycle import IllegalTransition, job_progress
from studio.artifacts import ArtifactStore, get_store
from studio.errors import StudioloError

log = logging.getLogger(__name__)

# Most containers started (or stopped, or removed) at once: the engine serialises much of
# the work anyway, and a few calls in flight keep N = 4 close to N = 1.
PARALLEL_ENGINE_CALLS = 8


@dataclass(frozen=True)
class Host:
    """One instance of a job."""

    name: str  # "algo-1"
    index: int  # 0-based: algo-1 is 0
    hosts: tuple[str, ...]  # every instance's name, algo-1 first
    root: Path  # the host folder mounted as this instance's /opt/ml

    @property
    def count(self) -> int:
        return len(self.hosts)


def host_names(count: int) -> tuple[str, ...]:
    return tuple(f"algo-{number}" for number in range(1, count + 1))


def host_container_name(job: Job, host: str) -> str:
    """algo-1's container keeps the one-instance name every kind of job has; the others add
    their host name."""
    return container_name(job) if host == "algo-1" else engine_name(ROLE_JOB, job.pk, host)


class ContainerJobRunner(JobRunner):
    """The N-instance lifecycle; a subclass says what one instance is (the hooks below)."""

    running_status: ClassVar[str] = SecondaryStatus.TRAINING
    # How the log and failure reasons name the containers: "the training container".
    container_word: ClassVar[str] = "training"

    def __init__(self, job: Job, lease: Lease) -> None:
        super().__init__(job, lease)
        names = host_names(max(1, job.instance_count))
        self.hosts = [
            Host(name, index, names, work_dir(job) / name / "opt_ml")
            for index, name in enumerate(names)
        ]
        self.containers: dict[str, str] = {}  # host name -> container id
        self.exits: dict[str, ContainerState] = {}  # host name -> its state once exited
        self.failed_host: str | None = None  # the first instance that failed

    # --- the hooks ------------------------------------------------------------------------

    def _prepare_host(self, host: Host, store: ArtifactStore) -> None:
        """Lay out `host.root` (the instance's /opt/ml), its inputs and configuration."""
        raise NotImplementedError

    def _container_command(self) -> tuple[list[str] | None, list[str] | None]:
        """(entrypoint, arguments); None keeps the image's own."""
        raise NotImplementedError

    def _environment(self, host: Host) -> dict[str, str]:
        """The kind's own variables (job name and ARN...)."""
        return {}

    def _background_start(self) -> None:
        """Called once every container runs (or was re-attached to)."""

    def _background_stop(self) -> None:
        """Called once every container exited, before `_collect`, whatever the outcome."""

    def _collect(self, *, outcome: str) -> dict[str, Any]:
        """Upload what the job produced (outcome: Completed, Stopped or Failed); returns
        fields of the job to set with its final status."""
        return {}

    def _failure_text(self, host: Host) -> str:
        """What the instance's container wrote as its failure reason, if anything."""
        return ""

    # --- the whole lifecycle ---------------------------------------------------------------

    def run(self) -> None:
        job = self.job
        existing = self._find_containers()
        try:
            early = job.status == JobStatus.PENDING or job.secondary_status in (
                SecondaryStatus.STARTING,
                SecondaryStatus.DOWNLOADING,
            )
            if early and len(existing) < len(self.hosts):
                # Nothing started yet, or a previous attempt died while starting them.
                self._remove_containers([state.id for state in existing.values()])
                self._prepare_and_start()
            elif not existing:
                self._finish_without_container()
                return
            else:
                self._reattach(existing)
            if not self.containers:
                return  # stopped before a container was started
            self._follow()
            self._finish()
        except LeaseLost:
            self._background_stop_quietly()  # the new owner syncs what is left
            raise
        except StudioloError as exc:
            self._fail(exc.message)
        except Exception as exc:
            log.exception("job %s: platform failure", job.name)
            self._fail(f"Platform error: {type(exc).__name__}: {exc}")
        finally:
            self._done.set()
            if self.writer is not None:
                self.writer.close()

    # --- preparation ------------------------------------------------------------------------

    def _prepare_and_start(self) -> None:
        job = self.job
        store = get_store()
        try:
            self._move(JobStatus.IN_PROGRESS, SecondaryStatus.STARTING, runtime=self.runtime.name)
        except IllegalTransition:
            job.refresh_from_db()
            if job.status != JobStatus.IN_PROGRESS:
                self._finish_without_container()  # stopped (or failed) before we began
                return
            # else: a retried preparation; start again from a clean tree
        writer = self._open_log()
        count = len(self.hosts)
        writer.system(
            f"Starting job {job.name} on {count} x {job.instance_type} ({self.runtime.name} runtime)"
            if count > 1
            else f"Starting job {job.name} on {job.instance_type} ({self.runtime.name} runtime)"
        )
        self._move(JobStatus.IN_PROGRESS, SecondaryStatus.DOWNLOADING)
        for host in self.hosts:
            self.lease.check()
            self._prepare_host(host, store)
        self.job.refresh_from_db()
        if self.job.status != JobStatus.IN_PROGRESS:
            self._finish_without_container()  # stop requested while downloading
            return
        # Whoever took the job over while we prepared it starts (or started) the containers.
        self.lease.check()
        # One instance without network access needs no network at all: it reaches nothing,
        # and its own host name is on loopback. Several get a network of their own.
        alone = count == 1 and not job.enable_network
        network_name = (
            None
            if alone
            else job_network_ensure(
                self.runtime, job.pk, job.team.slug, internal=not job.enable_network
            )
        )
        specs = [self._spec(host, network_name) for host in self.hosts]
        writer.system(
            f"Starting the {self.container_word} containers ({', '.join(h.name for h in self.hosts)})"
            if count > 1
            else f"Starting the {self.container_word} container"
        )
        self._start_all(specs)
        try:
            self._move(JobStatus.IN_PROGRESS, self.running_status)
        except IllegalTransition:
            # Stopped while the containers were starting: the watchdog stops them, and the
            # job ends Stopped with whatever the script managed to save.
            self.job.refresh_from_db()

    def _progress(self, message: str) -> None:
        """A status message while preparing (download progress...)."""
        self.lease.check()
        job_progress(job_id=self.job.pk, lease=self.lease, message=message)

    def _start_all(self, specs: list[tuple[Host, ContainerSpec]]) -> None:
        """Start every instance's container at once. If one cannot be started, the error
        is raised once all calls returned; what did start is in `self.containers`, which
        the clean-up removes."""

        def start(item: tuple[Host, ContainerSpec]) -> tuple[str, ContainerState]:
            host, spec = item
            try:
                return host.name, self.runtime.start(spec)
            except ContainerAlreadyExists:
                # Started by an attempt we did not know about: follow that one instead.
                found = self._find_containers().get(host.name)
                if found is None:
                    raise
                return host.name, found

        errors: list[BaseException] = []
        with ThreadPoolExecutor(max_workers=min(len(specs), PARALLEL_ENGINE_CALLS)) as pool:
            for future in [pool.submit(start, item) for item in specs]:
                try:
                    name, state = future.result()
                except Exception as exc:
                    errors.append(exc)
                    continue
                self.containers[name] = state.id
                if state.error and not state.running:
                    self.exits[name] = state  # the engine could not run it: ends at once
        if errors:
            raise errors[0]

    def _spec(self, host: Host, network_name: str | None) -> tuple[Host, ContainerSpec]:
        job = self.job
        instance = instance_type_get(job.instance_type)
        run_uuid = (
            Run.objects.filter(pk=job.run_id).values_list("run_uuid", flat=True).first()
            if job.run_id is not None
            else None
        )
        env = {
            "PYTHONUNBUFFERED": "1",
            "STUDIOLO_JOB_ID": str(job.pk),
            # The run's public id: what the Studiolo client in the job records into (through
            # its log lines, or the REST API when the job has network and STUDIOLO_URL).
            **({"STUDIOLO_RUN_ID": run_uuid} if run_uuid else {}),
            **self._environment(host),
            **job.environment,
        }
        user = None
        if self.runtime.isolated and is_framework_image(job.image) and os.geteuid() == 0:
            # Our framework images run scripts as an unprivileged user; images users bring
            # run as their own default user (root, per the SageMaker contract).
            _chown_tree(host.root, CONTAINER_UID, CONTAINER_UID)
            user = f"{CONTAINER_UID}:{CONTAINER_UID}"
        entrypoint, command = self._container_command()
        return host, ContainerSpec(
            name=host_container_name(job, host.name),
            image=job.image,
            command=command,
            entrypoint=entrypoint,
            env=env,
            mounts=(Mount(host.root, "/opt/ml"),),
            cpus=instance.cpus,
            memory_bytes=instance.memory_bytes,
            gpus=instance.gpus,
            network=network_name is not None or job.enable_network,
            network_name=network_name,
            labels={**job_labels(job), LABEL_HOST: host.name},
            user=user,
            hostname=host.name,  # resourceconfig.json's current_host, as on SageMaker
            # Without a network the host name must still resolve (to itself).
            extra_hosts=(
                {host.name: "127.0.0.1"}
                if network_name is None and self.runtime.isolated and not job.enable_network
                else {}
            ),
        )

    # --- running -----------------------------------------------------------------------------

    def _find_containers(self) -> dict[str, ContainerState]:
        """The job's containers on the engine, by host (algo-1 when unlabelled: started
        before jobs had several instances)."""
        found = self.runtime.find(
            {LABEL_JOB_ID: str(self.job.pk), LABEL_INSTANCE: instance_label()}
        )
        return {state.labels.get(LABEL_HOST, "algo-1"): state for state in found}

    def _reattach(self, existing: dict[str, ContainerState]) -> None:
        self.containers = {host: state.id for host, state in existing.items()}
        printed: dict[SkipKey, int] = {}
        rows = (
            JobLogLine.objects.filter(job_id=self.job.pk)
            .exclude(stream="system")
            .values("host", "stream")
            .annotate(n=Count("id"))
            .values_list("host", "stream", "n")
        )
        for host, stream, count in rows:
            # Lines from before hosts were recorded are algo-1's.
            key: SkipKey = (host or "algo-1", stream)
            printed[key] = printed.get(key, 0) + count
        self._open_log(skip_lines=printed).system(
            "Re-attached to the running containers after a worker change"
        )
        missing = [host.name for host in self.hosts if host.name not in self.containers]
        if missing:
            raise StudioloError(
                f"Platform error: the container of {', '.join(missing)} is gone (removed, or the "
                "engine restarted); the job cannot go on without it."
            )

    def _follow(self) -> None:
        writer = self._writer()
        watchdog = threading.Thread(
            target=self._watch, name=f"job-{self.job.pk}-watch", daemon=True
        )
        watchdog.start()
        ended: queue.Queue[tuple[str, BaseException | None]] = queue.Queue()
        for host, container_id in self.containers.items():
            threading.Thread(
                target=self._follow_host,
                args=(host, container_id, writer, ended),
                name=f"job-{self.job.pk}-{host}-log",
                daemon=True,
            ).start()
        self._background_start()
        pending = set(self.containers)
        try:
            while pending:
                host, error = ended.get()
                if isinstance(error, LeaseLost):
                    raise error  # the new owner follows the containers now
                pending.discard(host)
                state = (
                    self.runtime.inspect(self.containers[host])
                    if error is None
                    else self.runtime.wait(self.containers[host], timeout=60)
                )
                self.exits[host] = state
                if state.running:
                    if error is not None:
                        raise error
                    continue  # the log ended before the exit: `_finish` waits for it
                if state.exit_code != 0 and self.failed_host is None:
                    self.failed_host = host
                    if pending and not self._stop_sent.is_set():
                        self._stop_all(
                            f"{host} failed (exit code {state.exit_code}): stopping "
                            f"{', '.join(sorted(pending))}"
                        )
        finally:
            self._done.set()
            watchdog.join(timeout=10)

    def _follow_host(
        self,
        host: str,
        container_id: str,
        writer: LogWriter,
        ended: queue.Queue[tuple[str, BaseException | None]],
    ) -> None:
        error: BaseException | None = None
        try:
            for chunk in self.runtime.logs(container_id, follow=True):
                self.lease.check()  # lost: the new owner follows the container now
                writer.feed(chunk.stream, chunk.data, host=host)
        except BaseException as exc:  # handed to the runner's thread
            error = exc
        finally:
            ended.put((host, error))

    def _stop_container(self, reason: str) -> None:
        self._stop_all(reason)

    def _stop_all(self, reason: str) -> None:
        """SIGTERM to every instance still running, SIGKILL after the grace (each in its
        own thread: the watchdog and the runner go on)."""
        writer = self._writer()
        self._stop_sent.set()
        grace = settings.JOB_STOP_GRACE_SECONDS
        writer.system(f"{reason} (SIGTERM, SIGKILL after {grace} s)")
        for host, container_id in self.containers.items():
            if host in self.exits and not self.exits[host].running:
                continue
            threading.Thread(
                target=self._stop_quietly,
                args=(container_id, grace),
                name=f"job-{self.job.pk}-{host}-stop",
                daemon=True,
            ).start()

    def _stop_quietly(self, container_id: str, grace: float) -> None:
        try:
            self.runtime.stop(container_id, grace)
        except (ContainerNotFound, StudioloError) as exc:
            log.warning("job %s: stopping %s: %s", self.job.pk, container_id, exc)

    # --- the end ------------------------------------------------------------------------------

    def _finish(self) -> None:
        writer = self._writer()
        for host, container_id in self.containers.items():
            state = self.exits.get(host)
            if state is None or state.running:
                state = self.runtime.wait(container_id, timeout=60)
                self.exits[host] = state
            if self.failed_host is None and state.exit_code != 0:
                self.failed_host = host
            writer.system(
                f"{host}: container exited with code {state.exit_code}"
                if len(self.hosts) > 1
                else f"Container exited with code {state.exit_code}"
            )
        self.job.refresh_from_db()
        self.lease.check()
        try:
            if self.job.status == JobStatus.STOPPING:
                self._background_stop()
                fields = self._collect(outcome=JobStatus.STOPPED)
                final = (
                    SecondaryStatus.MAX_RUNTIME_EXCEEDED
                    if self.job.secondary_status == SecondaryStatus.MAX_RUNTIME_EXCEEDED
                    else SecondaryStatus.STOPPED
                )
                self._close_log()
                self._move(JobStatus.STOPPED, final, exit_code=self._exit_code(), **fields)
            elif self.failed_host is None:
                self._background_stop()
                self._move(JobStatus.IN_PROGRESS, SecondaryStatus.UPLOADING)
                fields = self._collect(outcome=JobStatus.COMPLETED)
                self._close_log()
                self._move(JobStatus.COMPLETED, SecondaryStatus.COMPLETED, exit_code=0, **fields)
            else:
                reason = self._failure_reason(self.failed_host)
                fields = {}
                try:  # what a failed job wrote helps to tell why; it must not hide the reason
                    self._background_stop()
                    fields = self._collect(outcome=JobStatus.FAILED)
                except StudioloError as exc:
                    writer.system(f"Could not upload the job's results: {exc.message}")
                self._close_log()
                self._fail_job(reason, exit_code=self._exit_code(), **fields)
        finally:
            self._cleanup()

    def _exit_code(self) -> int | None:
        """The failing instance's exit code, else algo-1's."""
        host = self.failed_host or "algo-1"
        state = self.exits.get(host)
        return state.exit_code if state is not None else None

    def _failure_reason(self, host_name: str) -> str:
        host = next(h for h in self.hosts if h.name == host_name)
        state = self.exits[host_name]
        prefix = f"{host_name}: " if len(self.hosts) > 1 else ""
        written = self._failure_text(host)
        if state.oom_killed:
            # The OOM kill explains the failure file's "exit code 137" better than it does.
            instance = instance_type_get(self.job.instance_type)
            head = (
                f"{prefix}OutOfMemory: the container was killed for exceeding the "
                f"{instance.memory_mb} MB memory limit of instance type {instance.name}; use a "
                "larger instance type or less memory."
            )
            return f"{head}\n{written}" if written else head
        if written:
            return f"{prefix}{written}"
        lines = self._writer().tail(host_name)
        tail = "\n".join(line for line in lines[-10:] if line)
        if state.error:
            head = f"{prefix}ClientError: the container could not run: {state.error}"
        else:
            head = (
                f"{prefix}AlgorithmError: the {self.container_word} container exited with code "
                f"{state.exit_code}."
            )
        return f"{head}\nLast log lines:\n{tail}" if tail else head

    def _finish_without_container(self) -> None:
        """No container exists: the job was stopped before it started, or it was lost."""
        self.job.refresh_from_db()
        if self.job.status in TERMINAL_STATUSES:
            return
        if self.job.status == JobStatus.STOPPING:
            self._close_log()
            self._move(
                JobStatus.STOPPED, SecondaryStatus.STOPPED, "Stopped before the container started"
            )
        else:
            self._close_log()
            self._fail_job(
                "Platform error: the job's container is gone (its worker stopped and the "
                "container was removed, or the engine restarted); its output could not be collected.",
                secondary_status=SecondaryStatus.FAILED,
            )
        self._cleanup()

    def _background_stop_quietly(self) -> None:
        try:
            self._background_stop()
        except Exception:  # what failed is reported by the caller's path, not hidden by this
            log.exception("job %s: stopping its background work failed", self.job.pk)

    def _fail(self, reason: str) -> None:
        self._background_stop_quietly()
        try:
            self._close_log()
        except StudioloError as exc:  # the log's own failure says less than the reason
            log.warning("job %s: %s", self.job.pk, exc.message)
        try:
            self._fail_job(reason)
        finally:
            self._cleanup()

    def _remove_containers(self, ids: list[str]) -> None:
        if not ids:
            return
        with ThreadPoolExecutor(max_workers=min(len(ids), PARALLEL_ENGINE_CALLS)) as pool:
            for future in [pool.submit(self.runtime.remove, cid) for cid in ids]:
                try:
                    future.result()
                except (ContainerNotFound, StudioloError) as exc:
                    log.warning("job %s: could not remove a container: %s", self.job.pk, exc)

    def _cleanup(self) -> None:
        if self.lease.lost.is_set():
            return  # the containers and the folders are the new owner's
        self._remove_containers(list(self.containers.values()))
        try:
            job_network_release(self.runtime, self.job.pk)
        except StudioloError:  # the reconciliation removes it later
            log.warning("job %s: could not remove its network", self.job.pk)
        self._cleanup_folder()


def _chown_tree(root: Path, uid: int, gid: int) -> None:
    """Hand an instance's /opt/ml tree to the container's (non-root) user."""
    for folder, dirs, files in os.walk(root):
        os.chown(folder, uid, gid)
        for name in dirs + files:
            os.chown(os.path.join(folder, name), uid, gid, follow_symlinks=False)
