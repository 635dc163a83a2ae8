"""A training job on a worker (SageMaker's CreateTrainingJob): the image's `train` under
`/opt/ml`, from Pending to a final state.

Built on `jobs.runner.JobRunner` (lease, log, watchdog, transitions, clean-up) and
registered for `JobKind.TRAINING` by `jobs.apps`:

1. Starting, Downloading: lay out `/opt/ml`, download the input channels, stage the source,
   write the configuration files.
2. Training: start the container (or re-attach to the one a previous worker started) and
   follow its output into the job's log until it exits.
3. Uploading: pack `/opt/ml/model` and `/opt/ml/output/data`, upload them and what the
   in-job client logged as run artifacts; then Completed, Stopped or Failed with its reason.
"""

from __future__ import annotations

import json
import logging
import os
import threading

from django.conf import settings
from django.db.models import Count

from compute.frameworks import CONTAINER_UID, is_framework_image
from compute.instance_types import instance_type_get
from compute.networks import job_network_ensure
from compute.runtime.base import (
    ContainerAlreadyExists,
    ContainerSpec,
    ContainerState,
    Mount,
)
from experiments.models import Run
from experiments.services import run_artifacts_collect
from jobs.checkpoints import JobCheckpoints
from jobs.contract import (
    OptMl,
    download_prefix_or_object,
    pack_folder,
    stage_source,
    training_job_arn,
    upload_file,
    write_config,
)
from jobs.lease import Lease, LeaseLost
from jobs.logs import LogWriter
from jobs.models import TERMINAL_STATUSES, Job, JobLogLine, JobStatus, SecondaryStatus
from jobs.runner import JobRunner, container_name, job_labels, work_dir
from jobs.services.lifecycle import IllegalTransition, job_progress
from studio.artifacts import get_store
from studio.errors import StudioloError, ValidationError

log = logging.getLogger(__name__)

MESSAGES: dict[str, str] = {
    SecondaryStatus.STARTING: "Preparing the instances for training",
    SecondaryStatus.DOWNLOADING: "Downloading input data",
    SecondaryStatus.TRAINING: "Training image download completed. Training in progress.",
    SecondaryStatus.UPLOADING: "Uploading generated training model",
    SecondaryStatus.COMPLETED: "Training job completed",
    SecondaryStatus.STOPPED: "Training job stopped",
    SecondaryStatus.MAX_RUNTIME_EXCEEDED: "Job stopped because the maximum runtime was exceeded",
}


class TrainingRunner(JobRunner):
    messages = MESSAGES

    def __init__(self, job: Job, lease: Lease) -> None:
        super().__init__(job, lease)
        self.opt_ml = OptMl(work_dir(job) / "opt_ml")
        self.checkpoints: JobCheckpoints | None = None

    # --- the whole lifecycle ---------------------------------------------------------------

    def run(self) -> None:
        job = self.job
        existing = self._find_container()
        try:
            if existing is None and job.status == JobStatus.PENDING:
                self._prepare_and_start()
            elif existing is None and job.secondary_status in (
                SecondaryStatus.STARTING,
                SecondaryStatus.DOWNLOADING,
            ):
                self._prepare_and_start()  # a previous attempt died before starting anything
            elif existing is None:
                self._finish_without_container()
                return
            else:
                self._reattach(existing)
            if self.container_id is None:
                return  # stopped before a container was started
            self._follow()
            self._finish()
        except LeaseLost:
            raise
        except StudioloError as exc:
            self._fail(exc.message)
        except Exception as exc:
            log.exception("job %s: platform failure", job.name)
            self._fail(f"Platform error: {type(exc).__name__}: {exc}")
        finally:
            self._done.set()
            if self.checkpoints is not None:  # a lost lease: no sync thread is left behind
                self.checkpoints.stop()
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
        self.writer = self._open_log()
        self.writer.system(
            f"Starting job {job.name} on {job.instance_type} ({self.runtime.name} runtime)"
        )
        self.opt_ml.create()
        self._move(JobStatus.IN_PROGRESS, SecondaryStatus.DOWNLOADING)
        for channel in job.input_channels:
            self.lease.check()
            key = store.key_from_uri(channel["uri"])
            self.writer.system(f"Downloading channel {channel['name']} from {channel['uri']}")
            size = download_prefix_or_object(
                store,
                key,
                self.opt_ml.data / channel["name"],
                self._download_progress(channel["name"]),
            )
            self.writer.system(f"Channel {channel['name']}: {size / 1e6:.1f} MB")
        if job.source_uri:
            stage_source(store, store.key_from_uri(job.source_uri), self.opt_ml.code)
            if job.entry_point and not (self.opt_ml.code / job.entry_point).exists():
                raise ValidationError(
                    f"entry_point: {job.entry_point!r} is not in the source", field="entry_point"
                )
        write_config(
            self.opt_ml,
            hyperparameters=self._hyperparameters(),
            channels=job.input_channels,
            instance_type=job.instance_type,
        )
        self._checkpoints_restore()
        self.job.refresh_from_db()
        if self.job.status != JobStatus.IN_PROGRESS:
            self._finish_without_container()  # stop requested while downloading
            return
        # Whoever took the job over while we prepared it starts (or started) the container.
        self.lease.check()
        # A job that asks for network access gets a bridge of its own (compute.networks): it
        # shares none with another job or with any serving container.
        network_name = (
            job_network_ensure(self.runtime, job.pk, job.team.slug) if job.enable_network else None
        )
        spec = self._spec(network_name)
        self.writer.system("Starting the training container")
        try:
            state = self.runtime.start(spec)
        except ContainerAlreadyExists:
            # Started by an attempt we did not know about: follow that one instead.
            found = self._find_container()
            if found is None:
                raise
            state = found
        self.container_id = state.id
        self._checkpoints_start()
        try:
            self._move(JobStatus.IN_PROGRESS, SecondaryStatus.TRAINING)
        except IllegalTransition:
            # Stopped while the container was starting: the watchdog stops it, and the
            # job ends Stopped with whatever the script managed to save.
            self.job.refresh_from_db()

    def _download_progress(self, channel: str):  # type: ignore[no-untyped-def]
        def report(files_done: int, files: int, done: int, total: int) -> None:
            self.lease.check()
            job_progress(
                job_id=self.job.pk,
                lease=self.lease,
                message=f"Downloading input data: channel {channel}, {files_done}/{files} files, "
                f"{done / 1e6:.1f}/{total / 1e6:.1f} MB",
            )

        return report

    def _hyperparameters(self) -> dict[str, str]:
        hyperparameters = dict(self.job.hyperparameters)
        if self.job.entry_point:
            # What the SageMaker SDK adds in script mode, JSON-encoded as it does.
            hyperparameters.setdefault("sagemaker_program", json.dumps(self.job.entry_point))
            hyperparameters.setdefault("sagemaker_submit_directory", json.dumps("/opt/ml/code"))
        hyperparameters.setdefault("sagemaker_job_name", json.dumps(self.job.name))
        hyperparameters.setdefault("sagemaker_region", json.dumps("local"))
        return hyperparameters

    def _spec(self, network_name: str | None) -> ContainerSpec:
        job = self.job
        instance = instance_type_get(job.instance_type)
        run_uuid = (
            Run.objects.filter(pk=job.run_id).values_list("run_uuid", flat=True).first()
            if job.run_id is not None
            else None
        )
        env = {
            "TRAINING_JOB_NAME": job.name,
            "TRAINING_JOB_ARN": training_job_arn(job.name),
            "PYTHONUNBUFFERED": "1",
            "STUDIOLO_JOB_ID": str(job.pk),
            # The run's public id: what the Studiolo client in the job records into (through
            # its log lines, or the REST API when the job has network and STUDIOLO_URL).
            **({"STUDIOLO_RUN_ID": run_uuid} if run_uuid else {}),
            **job.environment,
        }
        user = None
        if self.runtime.isolated and is_framework_image(job.image) and os.geteuid() == 0:
            # Our framework images run scripts as an unprivileged user; images users bring
            # run as their own default user (root, per the SageMaker contract).
            self.opt_ml.make_writable_for(CONTAINER_UID, CONTAINER_UID)
            user = f"{CONTAINER_UID}:{CONTAINER_UID}"
        if job.container_entrypoint:
            entrypoint, command = job.container_entrypoint, job.container_arguments
        else:
            entrypoint, command = None, job.container_arguments or ["train"]
        return ContainerSpec(
            name=container_name(job),
            image=job.image,
            command=command,
            entrypoint=entrypoint,
            env=env,
            mounts=(Mount(self.opt_ml.root, "/opt/ml"),),
            cpus=instance.cpus,
            memory_bytes=instance.memory_bytes,
            gpus=instance.gpus,
            network=job.enable_network,
            network_name=network_name,
            labels=job_labels(job),
            user=user,
            hostname="algo-1",  # resourceconfig.json's current_host, as on SageMaker
        )

    # --- running -----------------------------------------------------------------------------

    def _reattach(self, state: ContainerState) -> None:
        self.container_id = state.id
        printed = dict(
            JobLogLine.objects.filter(job_id=self.job.pk)
            .exclude(stream="system")
            .values("stream")
            .annotate(n=Count("id"))
            .values_list("stream", "n")
        )
        self._open_log(skip_lines=printed).system(
            "Re-attached to the running container after a worker change"
        )
        self._checkpoints_start()

    def _follow(self) -> None:
        container_id, writer = self._running()
        watchdog = threading.Thread(
            target=self._watch, name=f"job-{self.job.pk}-watch", daemon=True
        )
        watchdog.start()
        try:
            for chunk in self.runtime.logs(container_id, follow=True):
                self.lease.check()  # lost: the new owner follows the container now
                writer.feed(chunk.stream, chunk.data)
        finally:
            self._done.set()
            watchdog.join(timeout=10)

    def _stop_container(self, reason: str) -> None:
        container_id, writer = self._running()
        self._stop_sent.set()
        grace = settings.JOB_STOP_GRACE_SECONDS
        writer.system(f"{reason} (SIGTERM, SIGKILL after {grace} s)")
        threading.Thread(
            target=self.runtime.stop, args=(container_id, grace), name="job-stop", daemon=True
        ).start()

    def _running(self) -> tuple[str, LogWriter]:
        if self.container_id is None or self.writer is None:
            raise RuntimeError("no container is running for this job")
        return self.container_id, self.writer

    # --- the end ------------------------------------------------------------------------------

    def _finish(self) -> None:
        container_id, writer = self._running()
        state = self.runtime.wait(container_id, timeout=60)
        writer.system(f"Container exited with code {state.exit_code}")
        self._checkpoints_stop()  # a last pass, whatever the outcome: before the results
        self.job.refresh_from_db()
        self.lease.check()
        try:
            if self.job.status == JobStatus.STOPPING:
                self._upload(stopping=True)
                final = (
                    SecondaryStatus.MAX_RUNTIME_EXCEEDED
                    if self.job.secondary_status == SecondaryStatus.MAX_RUNTIME_EXCEEDED
                    else SecondaryStatus.STOPPED
                )
                self._close_log()
                self._move(JobStatus.STOPPED, final, exit_code=state.exit_code)
            elif state.exit_code == 0:
                self._upload(stopping=False)
                self._close_log()
                self._move(JobStatus.COMPLETED, SecondaryStatus.COMPLETED, exit_code=0)
            else:
                reason = self._failure_reason(state)
                try:  # what a failed run logged helps to tell why; it must not hide the reason
                    self._collect_run_artifacts()
                except StudioloError as exc:
                    self._writer().system(f"Could not upload the run's artifacts: {exc.message}")
                self._close_log()
                self._fail_job(reason, exit_code=state.exit_code)
        finally:
            self._cleanup()

    def _upload(self, *, stopping: bool) -> None:
        status = JobStatus.STOPPING if stopping else JobStatus.IN_PROGRESS
        secondary = self.job.secondary_status if stopping else SecondaryStatus.UPLOADING
        self._move(status, secondary, MESSAGES[SecondaryStatus.UPLOADING])
        store = get_store()
        prefix = store.key_from_uri(self.job.output_path) + f"/{self.job.name}/output/"
        packed = self.opt_ml.root.parent
        pack_folder(self.opt_ml.model, packed / "model.tar.gz")
        upload_file(store, packed / "model.tar.gz", prefix + "model.tar.gz")
        pack_folder(self.opt_ml.output_data, packed / "output.tar.gz")
        upload_file(store, packed / "output.tar.gz", prefix + "output.tar.gz")
        self._collect_run_artifacts()
        self._move(
            status,
            secondary,
            "Uploaded the model and output archives",
            model_artifact_uri=store.uri(prefix + "model.tar.gz"),
            output_artifact_uri=store.uri(prefix + "output.tar.gz"),
        )

    def _collect_run_artifacts(self) -> None:
        """What the job's Studiolo client logged as artifacts (copied below
        /opt/ml/output/artifacts) goes into the job's run."""
        run = (
            Run.objects.select_related("experiment__team").filter(pk=self.job.run_id).first()
            if self.job.run_id
            else None
        )
        if run is None:
            return
        self.lease.check()
        files, size = run_artifacts_collect(run=run, folder=self.opt_ml.run_artifacts)
        if files:
            self._writer().system(
                f"Uploaded {files} artifact file(s) ({size / 1e6:.1f} MB) into run {run.run_uuid}"
            )

    def _failure_reason(self, state: ContainerState) -> str:
        written = self.opt_ml.failure_text()
        if state.oom_killed:
            # The OOM kill explains the failure file's "exit code 137" better than it does.
            instance = instance_type_get(self.job.instance_type)
            head = (
                f"OutOfMemory: the container was killed for exceeding the {instance.memory_mb} MB memory "
                f"limit of instance type {instance.name}; use a larger instance type or less memory."
            )
            return f"{head}\n{written}" if written else head
        if written:
            return written
        tail = "\n".join(line for line in self._writer().tail()[-10:] if line)
        if state.error:
            head = f"ClientError: the container could not run: {state.error}"
        else:
            head = f"AlgorithmError: the training container exited with code {state.exit_code}."
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

    def _fail(self, reason: str) -> None:
        try:
            self._checkpoints_stop()
        except StudioloError as exc:
            log.warning("job %s: %s", self.job.pk, exc.message)
        try:
            self._close_log()
        except StudioloError as exc:  # the log's own failure says less than the reason
            log.warning("job %s: %s", self.job.pk, exc.message)
        try:
            self._fail_job(reason)
        finally:
            self._cleanup()

    # --- checkpoints (CheckpointConfig; jobs.checkpoints) ------------------------------------
    # With the multi-instance runner these are the bodies of `_prepare_host` (restore, per
    # host), `_background_start` and `_background_stop`.

    def _job_checkpoints(self) -> JobCheckpoints:
        if self.checkpoints is None:
            self.checkpoints = JobCheckpoints(
                self.job.checkpoint,
                get_store(),
                interval=settings.CHECKPOINT_SYNC_SECONDS,
                say=self._say,
            )
        return self.checkpoints

    def _say(self, text: str) -> None:
        if self.writer is not None:  # (the sync threads are stopped before the log closes)
            self.writer.system(text)

    def _checkpoints_restore(self) -> None:
        """Before the container starts, under Downloading: the URI's files in place."""
        if self.job.checkpoint:
            self.lease.check()
            self._job_checkpoints().restore("algo-1", self.opt_ml.root)

    def _checkpoints_start(self) -> None:
        if self.job.checkpoint:
            self._job_checkpoints().start({"algo-1": self.opt_ml.root})

    def _checkpoints_stop(self) -> None:
        if self.checkpoints is not None:
            self.checkpoints.stop()
