"""A processing job on a worker (SageMaker's CreateProcessingJob): the image's own program,
or a user's script in a framework image, on N instances, with its inputs under
`/opt/ml/processing/` and its outputs uploaded from there.

Built on `jobs.cluster.ContainerJobRunner` (N containers `algo-1` ... `algo-N`, the log of
every host, fail fast, stop, re-attach) and registered for `JobKind.PROCESSING` by
`jobs.apps`. What a processing instance is:

1. Downloading: every instance gets its `/opt/ml` (`jobs.processing_contract`): the config
   files in `/opt/ml/config/`, every input downloaded to its LocalPath (ShardedByS3Key: this
   instance's share only), every output's folder created empty.
2. Processing: the image's ENTRYPOINT/CMD, or AppSpecification's (no `train` argument).
   Continuous outputs are uploaded while it runs.
3. The end, whatever the outcome (SageMaker keeps what a failed job wrote): every output
   folder of every instance is uploaded to its URI (all instances to the same one), and the
   first KB of `/opt/ml/output/message` becomes the exit message and, for a failed
   instance, the failure reason (else the last lines of that instance's log).
"""

from __future__ import annotations

import logging
import shutil
import time
from typing import Any

from jobs.cluster import ContainerJobRunner, Host
from jobs.contract import SHARDED_BY_S3_KEY, download_prefix_or_object
from jobs.lease import Lease
from jobs.models import Job, SecondaryStatus
from jobs.processing_contract import (
    ProcessingHost,
    ProcessingSettings,
    processing_job_config,
    upload_output,
    write_config,
)
from jobs.services.submission import prefix_or_object_exists
from jobs.sync import FolderSync
from studio.artifacts import ArtifactStore, get_store
from studio.errors import StudioloError, ValidationError

log = logging.getLogger(__name__)

# How often a Continuous output is looked at for new or changed files.
CONTINUOUS_UPLOAD_EVERY = 2.0

MESSAGES: dict[str, str] = {
    SecondaryStatus.STARTING: "Preparing the instances for processing",
    SecondaryStatus.DOWNLOADING: "Downloading input data",
    SecondaryStatus.PROCESSING: "Processing in progress",
    SecondaryStatus.UPLOADING: "Uploading the processing outputs",
    SecondaryStatus.COMPLETED: "Processing job completed",
    SecondaryStatus.STOPPED: "Processing job stopped",
    SecondaryStatus.MAX_RUNTIME_EXCEEDED: "Job stopped because the maximum runtime was exceeded",
}


class ProcessingRunner(ContainerJobRunner):
    running_status = SecondaryStatus.PROCESSING
    container_word = "processing"
    messages = MESSAGES

    def __init__(self, job: Job, lease: Lease) -> None:
        super().__init__(job, lease)
        self.settings: ProcessingSettings = job.processing
        self._continuous: list[FolderSync] = []

    # --- the hooks ------------------------------------------------------------------------

    def _prepare_host(self, host: Host, store: ArtifactStore) -> None:
        job = self.job
        layout = ProcessingHost(host.root)
        if host.root.exists():
            shutil.rmtree(host.root)  # a retried preparation starts clean
        layout.create(self.settings)
        label = f"{host.name}: " if host.count > 1 else ""
        for item in self.settings["inputs"]:
            self.lease.check()
            key = store.key_from_uri(item["uri"])
            if not prefix_or_object_exists(store, key):
                # Deleted since the submission checked it.
                raise ValidationError(
                    f"ClientError: input {item['name']}: {item['uri']} does not exist",
                    field=f"inputs.{item['name']}.uri",
                )
            sharded = item["distribution"] == SHARDED_BY_S3_KEY
            started = time.monotonic()
            size = download_prefix_or_object(
                store,
                key,
                layout.path(item["local_path"]),
                self._download_progress(host, item["name"], started),
                shard=(host.index, host.count) if sharded else (0, 1),
            )
            took = time.monotonic() - started
            self._writer().system(
                f"{label}input {item['name']} → {item['local_path']}: {size / 1e6:.1f} MB "
                f"in {took:.1f} s"
                + (f" (shard {host.index + 1} of {host.count})" if sharded else "")
            )
        write_config(
            layout,
            job_config=processing_job_config(
                name=job.name,
                image=job.image,
                entrypoint=job.container_entrypoint,
                arguments=job.container_arguments,
                environment=job.environment,
                settings=self.settings,
                instance_type=job.instance_type,
                instance_count=job.instance_count,
                max_runtime_seconds=job.max_runtime_seconds,
                enable_network=job.enable_network,
            ),
            current_host=host.name,
            hosts=host.hosts,
        )

    def _download_progress(self, host: Host, name: str, started: float):  # type: ignore[no-untyped-def]
        def report(files_done: int, files: int, done: int, total: int) -> None:
            self._progress(
                f"Downloading input data: {host.name}, input {name}, {files_done}/{files} files, "
                f"{done / 1e6:.1f}/{total / 1e6:.1f} MB in {time.monotonic() - started:.1f} s"
            )

        return report

    def _container_command(self) -> tuple[list[str] | None, list[str] | None]:
        # No `train` argument: the image's ENTRYPOINT/CMD unless AppSpecification says.
        return self.job.container_entrypoint or None, self.job.container_arguments or None

    def _environment(self, host: Host) -> dict[str, str]:
        # SageMaker gives a processing container only the request's Environment (the base
        # adds it); the job and its peers are in /opt/ml/config.
        return {}

    def _background_start(self) -> None:
        """S3UploadMode Continuous: each instance's output folder is uploaded while the job
        runs (new and changed files, every CONTINUOUS_UPLOAD_EVERY seconds; nothing deleted:
        the end of the job uploads every output in full anyway, `_collect`)."""
        store = get_store()
        for host in self.hosts:
            for output in self.settings["outputs"]:
                if output["upload_mode"] != "Continuous":
                    continue
                sync = FolderSync(
                    store,
                    store.key_from_uri(output["uri"]),
                    ProcessingHost(host.root).path(output["local_path"]),
                    interval=CONTINUOUS_UPLOAD_EVERY,
                    mirror_deletes=False,
                    on_error=lambda exc: log.warning(
                        "job %s: continuous upload: %s", self.job.pk, exc.message
                    ),
                    name=f"job-{self.job.pk}-{host.name}-continuous",
                )
                sync.start()
                self._continuous.append(sync)

    def _background_stop(self) -> None:
        syncs, self._continuous = self._continuous, []
        for sync in syncs:
            try:
                sync.stop()  # its last pass; `_collect` uploads everything once more
            except StudioloError as exc:
                log.warning("job %s: continuous upload: %s", self.job.pk, exc.message)

    def _collect(self, *, outcome: str) -> dict[str, Any]:
        """Every output of every instance, whatever the outcome; the exit message."""
        store = get_store()
        writer = self._writer()
        for output in self.settings["outputs"]:
            prefix = store.key_from_uri(output["uri"])
            files = size = 0
            for host in self.hosts:
                self.lease.check()
                folder = ProcessingHost(host.root).path(output["local_path"])
                done, done_size = upload_output(store, folder, prefix)
                files, size = files + done, size + done_size
            writer.system(
                f"Output {output['name']}: {files} file(s), {size / 1e6:.1f} MB → {output['uri']}"
            )
        return {"processing": {**self.settings, "exit_message": self._exit_message()}}

    def _failure_text(self, host: Host) -> str:
        return ProcessingHost(host.root).exit_message()

    def _exit_message(self) -> str:
        """The failing instance's message, else the first instance's that wrote one."""
        ordered = sorted(self.hosts, key=lambda host: host.name != self.failed_host)
        for host in ordered:
            message = ProcessingHost(host.root).exit_message()
            if message:
                return message
        return ""
