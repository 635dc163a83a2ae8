"""A training job on a worker (SageMaker's CreateTrainingJob): the image's `train` under
`/opt/ml` on each of its instances, from Pending to a final state.

Built on `jobs.cluster.ContainerJobRunner` (N instances, their network, logs by host,
fail-fast, stop, re-attach), itself on `jobs.runner.JobRunner` (lease, log, watchdog,
transitions, clean-up), and registered for `JobKind.TRAINING` by `jobs.apps`. What is
training's own:

1. Starting, Downloading: each instance's `/opt/ml` gets its input channels (all objects,
   or with `ShardedByS3Key` its share of them), the source, and the configuration files
   (`resourceconfig.json` naming the instance and its peers).
2. Training: `train` runs on every instance.
3. Uploading: `/opt/ml/model` and `/opt/ml/output/data` of algo-1 are packed and uploaded
   (on SageMaker every instance's model folder is uploaded to the same key, so the last
   writer wins; scripts save the model on the leader only, which the studio makes the rule:
   algo-1's is the job's model), and what the in-job client logged as run artifacts on
   algo-1; then Completed, Stopped or Failed with the failing instance's reason.
"""

from __future__ import annotations

import json
import logging
import time
from functools import cached_property
from typing import Any

from django.conf import settings

from experiments.models import Run
from experiments.services import run_artifacts_collect
from jobs.checkpoints import JobCheckpoints
from jobs.cluster import ContainerJobRunner, Host
from jobs.contract import (
    SHARDED_BY_S3_KEY,
    OptMl,
    download_prefix_or_object,
    pack_folder,
    stage_source,
    training_job_arn,
    upload_file,
    write_config,
)
from jobs.lease import Lease
from jobs.models import Job, JobStatus, SecondaryStatus
from studio.artifacts import ArtifactStore, get_store
from studio.errors import ValidationError

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


class TrainingRunner(ContainerJobRunner):
    messages = MESSAGES
    running_status = SecondaryStatus.TRAINING
    container_word = "training"

    def __init__(self, job: Job, lease: Lease) -> None:
        super().__init__(job, lease)
        self.leader = OptMl(self.hosts[0].root)

    # --- one instance -----------------------------------------------------------------------

    def _prepare_host(self, host: Host, store: ArtifactStore) -> None:
        job, writer = self.job, self._writer()
        opt_ml = OptMl(host.root)
        opt_ml.create()
        where = f"{host.name}: " if host.count > 1 else ""
        for channel in job.input_channels:
            self.lease.check()
            sharded = channel.get("distribution") == SHARDED_BY_S3_KEY
            key = store.key_from_uri(channel["uri"])
            writer.system(
                f"{where}Downloading channel {channel['name']} from {channel['uri']}"
                + (f" (ShardedByS3Key: share {host.index + 1} of {host.count})" if sharded else "")
            )
            started = time.monotonic()
            size = download_prefix_or_object(
                store,
                key,
                opt_ml.data / channel["name"],
                self._download_progress(host, channel["name"]),
                shard=(host.index, host.count) if sharded else (0, 1),
            )
            writer.system(
                f"{where}Channel {channel['name']}: {size / 1e6:.1f} MB in "
                f"{time.monotonic() - started:.1f} s"
            )
        if job.source_uri:
            stage_source(store, store.key_from_uri(job.source_uri), opt_ml.code)
            if job.entry_point and not (opt_ml.code / job.entry_point).exists():
                raise ValidationError(
                    f"entry_point: {job.entry_point!r} is not in the source", field="entry_point"
                )
        write_config(
            opt_ml,
            hyperparameters=self._hyperparameters(),
            channels=job.input_channels,
            instance_type=job.instance_type,
            current_host=host.name,
            hosts=host.hosts,
        )
        # CheckpointConfig: what the URI holds is in place before the container starts.
        self.checkpoints.restore(host.name, host.root)

    def _download_progress(self, host: Host, channel: str):  # type: ignore[no-untyped-def]
        where = f"{host.name}, " if host.count > 1 else ""

        started = time.monotonic()

        def report(files_done: int, files: int, done: int, total: int) -> None:
            self._progress(
                f"Downloading input data: {where}channel {channel}, {files_done}/{files} files, "
                f"{done / 1e6:.1f}/{total / 1e6:.1f} MB in {time.monotonic() - started:.1f} s"
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

    def _container_command(self) -> tuple[list[str] | None, list[str] | None]:
        job = self.job
        if job.container_entrypoint:
            return job.container_entrypoint, job.container_arguments
        return None, job.container_arguments or ["train"]

    def _environment(self, host: Host) -> dict[str, str]:
        return {
            "TRAINING_JOB_NAME": self.job.name,
            "TRAINING_JOB_ARN": training_job_arn(self.job.name),
        }

    def _failure_text(self, host: Host) -> str:
        return OptMl(host.root).failure_text()

    # --- checkpoints (CheckpointConfig): every instance's folder synced to the one URI ------

    @cached_property
    def checkpoints(self) -> JobCheckpoints:
        return JobCheckpoints(
            self.job.checkpoint,
            get_store(),
            interval=settings.CHECKPOINT_SYNC_SECONDS,
            say=self._say,
        )

    def _say(self, text: str) -> None:
        if self.writer is not None:  # the syncs are stopped before the log closes
            self.writer.system(text)

    def _background_start(self) -> None:
        self.checkpoints.start({host.name: host.root for host in self.hosts})

    def _background_stop(self) -> None:
        # A last pass, whatever the outcome: a stopped or failed job keeps its checkpoints.
        self.checkpoints.stop()

    # --- the results ------------------------------------------------------------------------

    def _collect(self, *, outcome: str) -> dict[str, Any]:
        if outcome == JobStatus.FAILED:
            # What a failed run logged helps to tell why; no model is uploaded.
            self._collect_run_artifacts()
            return {}
        if outcome == JobStatus.STOPPED:
            self._move(
                JobStatus.STOPPING, self.job.secondary_status, MESSAGES[SecondaryStatus.UPLOADING]
            )
        store = get_store()
        prefix = store.key_from_uri(self.job.output_path) + f"/{self.job.name}/output/"
        packed = self.leader.root.parent
        pack_folder(self.leader.model, packed / "model.tar.gz")
        upload_file(store, packed / "model.tar.gz", prefix + "model.tar.gz")
        pack_folder(self.leader.output_data, packed / "output.tar.gz")
        upload_file(store, packed / "output.tar.gz", prefix + "output.tar.gz")
        self._collect_run_artifacts()
        self._writer().system("Uploaded the model and output archives")
        return {
            "model_artifact_uri": store.uri(prefix + "model.tar.gz"),
            "output_artifact_uri": store.uri(prefix + "output.tar.gz"),
        }

    def _collect_run_artifacts(self) -> None:
        """What the job's Studiolo client logged as artifacts on algo-1 (copied below
        /opt/ml/output/artifacts) goes into the job's run."""
        run = (
            Run.objects.select_related("experiment__team").filter(pk=self.job.run_id).first()
            if self.job.run_id
            else None
        )
        if run is None:
            return
        self.lease.check()
        files, size = run_artifacts_collect(run=run, folder=self.leader.run_artifacts)
        if files:
            self._writer().system(
                f"Uploaded {files} artifact file(s) ({size / 1e6:.1f} MB) into run {run.run_uuid}"
            )
