"""A batch transform job on a worker, from Pending to a final state. Registered for
`JobKind.TRANSFORM` by `transform.apps` (jobs dispatches through `jobs.runners`).

It shares the training runner's lease (renewed by its own thread, fencing every write),
watchdog (stop requests, MaxRuntimeInSeconds), transitions and log; what happens in between
differs:

1. Starting: take the job, open its log.
2. Downloading: check that its package is still Approved, stage the model (once per
   artifact, shared with endpoints; checked against the package's pin while it downloads),
   download the input objects into the job's work folder and count their records (the
   progress total).
3. Start the model's serving container (`serve`, the batch environment variables, the job's
   labels and deterministic name, so reconciliation finds it); its output goes into the job's
   log. A container that exits before answering /ping fails the job with its last lines.
4. Transforming: each object, in key order, is split into requests, sent with
   MaxConcurrentTransforms in flight, and the answers written in input order to
   `<output path>/<path relative to the input prefix>.out`, once the whole object succeeded.
   A failed request (after its retries) fails the job, naming the object and the records.
5. Stop and remove the container, whatever happened, and the work folder (and the staged
   model, when nothing else serves it).

A worker that dies mid-transform: the next owner (after reconciliation) removes the old
container and starts over from the first object; the outputs written already are written
again, identically. A stop request or MaxRuntimeInSeconds ends the job Stopped; the objects
finished by then stay in the output path, as on SageMaker.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import cast

from django.conf import settings

from compute.runtime.base import ContainerNotFound
from compute.serving import (
    ServingSource,
    ServingStartFailed,
    serving_address,
    serving_container_spec,
    serving_network,
    serving_network_release,
    serving_placement,
    serving_start,
    wait_until_ready,
)
from compute.staging import stage_model, staged_models_prune
from jobs.lease import Lease, LeaseLost
from jobs.logs import LogWriter
from jobs.models import TERMINAL_STATUSES, Job, JobStatus, SecondaryStatus
from jobs.runner import JobRunner, container_name, job_labels, work_dir
from jobs.services.lifecycle import IllegalTransition, job_progress
from studio.artifacts import ArtifactStore, get_store
from studio.errors import StudioloError, ValidationError
from transform.client import InvocationFailed, ModelClient, ModelClientConfig, execution_parameters
from transform.feeding import Feeder, invocation_failure
from transform.inputs import InputObject, inputs_download, inputs_list, model_source
from transform.plan import (
    Plan,
    batch_environment,
    plan_effective,
    plan_needs_container,
    plan_settle,
)
from transform.records import Batch
from transform.services import TransformSettings

log = logging.getLogger(__name__)

PROGRESS_EVERY = 0.5  # seconds between progress writes (and events) while transforming
SERVING_STOP_GRACE = 30.0  # SageMaker kills a serving container 30 s after SIGTERM
MESSAGES: dict[str, str] = {
    SecondaryStatus.STARTING: "Preparing the instances for batch transform",
    SecondaryStatus.DOWNLOADING: "Downloading the model and the input data",
    SecondaryStatus.COMPLETED: "Transform job completed",
    SecondaryStatus.STOPPED: "Transform job stopped",
    SecondaryStatus.MAX_RUNTIME_EXCEEDED: "Job stopped because the maximum runtime was exceeded",
}


class _Interrupted(Exception):
    """A stop request or MaxRuntimeInSeconds: the job ends Stopped."""


class TransformRunner(JobRunner):
    messages = MESSAGES

    def __init__(self, job: Job, lease: Lease) -> None:
        super().__init__(job, lease)
        self.settings = cast(TransformSettings, job.transform)
        self.model_root: Path | None = None
        self.source: ServingSource | None = None  # once the package was checked
        self.address: tuple[str, int] | None = None  # the serving container's, once ready
        self._interrupted = threading.Event()  # a stop or the runtime limit
        self._cancel = threading.Event()  # in-flight requests: give up, do not retry
        self._log_thread: threading.Thread | None = None
        self.records_done = self.records_total = self.files_done = self.files_total = 0
        self._last_report = 0.0

    def run(self) -> None:
        watchdog = threading.Thread(
            target=self._watch, name=f"job-{self.job.pk}-watch", daemon=True
        )
        watchdog.start()
        try:
            self._run()
        except LeaseLost:
            # Another worker drives the job now: leave its container and folder alone.
            self._cancel.set()
            self._close_log()
            raise
        finally:
            self._done.set()
            watchdog.join(timeout=10)

    def _run(self) -> None:
        try:
            if not self._begin():
                return
            objects = self._download()
            self._start_serving()
            self._transform(objects, self._plan())
            self._end(self._completed)
        except LeaseLost:
            raise
        except _Interrupted:
            self._end(self._stopped)
        except StudioloError as exc:
            self._end_failed(exc.message)
        except Exception as exc:
            log.exception("job %s: platform failure", self.job.name)
            self._end_failed(f"Platform error: {type(exc).__name__}: {exc}")

    # --- the phases ---------------------------------------------------------------------------

    def _begin(self) -> bool:
        """Take the job (again, after a worker change); False when there is nothing to do."""
        existing = self._find_container()
        if existing is not None:
            self.container_id = existing.id  # a previous attempt's: removed below or at the end
        if self.job.status == JobStatus.STOPPING:
            self._end(self._stopped)  # stopped while no worker drove it
            return False
        resumed = self.job.status == JobStatus.IN_PROGRESS
        try:
            self._move(
                JobStatus.IN_PROGRESS,
                SecondaryStatus.STARTING,
                "Restarting the transform after a worker change"
                if resumed
                else MESSAGES[SecondaryStatus.STARTING],
                runtime=self.runtime.name,
                records_done=0,
                files_done=0,
            )
        except IllegalTransition:
            self.job.refresh_from_db()
            if self.job.status == JobStatus.STOPPING:
                self._end(self._stopped)
            return False  # stopped (or failed) before it began
        writer = self._open_log()
        if resumed:
            writer.system("Restarting the transform after a worker change")
        if existing is not None:
            writer.system("Removing the serving container of the previous attempt")
            self._remove_container()
        writer.system(
            f"Starting batch transform job {self.job.name} on {self.job.instance_type} "
            f"({self.runtime.name} runtime) with model {self.settings['model']}"
        )
        return True

    def _download(self) -> list[InputObject]:
        self._move(
            JobStatus.IN_PROGRESS,
            SecondaryStatus.DOWNLOADING,
            MESSAGES[SecondaryStatus.DOWNLOADING],
        )
        writer = self._writer()
        writer.system(f"Staging the model from {self.settings['model_artifact_uri']}")
        self.source = model_source(self.job, self.settings)
        self.model_root = stage_model(self.source)  # checked against the package's pin
        self._check()
        store = get_store()
        listing = inputs_list(store, store.key_from_uri(self.settings["input_uri"]))
        if not listing:
            raise ValidationError(
                f"input_uri: {self.settings['input_uri']} holds no objects", field="input_uri"
            )
        objects = inputs_download(
            store,
            listing,
            work_dir(self.job) / "input",
            split_type=self.settings["split_type"],
            check=self._check,
            report=lambda message, force: self._report(message, force=force),
        )
        self.files_total = len(objects)
        self.records_total = sum(o.records for o in objects)
        total = sum(size for _, _, size in listing)
        writer.system(
            f"Input {self.settings['input_uri']}: {self.files_total} objects, "
            f"{self.records_total} records, {total / 1e6:.1f} MB"
        )
        return objects

    def _start_serving(self) -> None:
        job, writer = self.job, self._writer()
        if self.model_root is None or self.source is None:
            raise RuntimeError("the model is not staged")
        source = self.source
        spec = serving_container_spec(
            source,
            runtime=self.runtime,
            placement=serving_placement(self.runtime, job.team.slug),
            name=container_name(job),
            instance_type=job.instance_type,
            labels=job_labels(job),
            model_root=self.model_root,
            extra_env=batch_environment(
                self.settings, job_id=job.pk, model_environment=source.environment
            ),
        )
        self._check()
        writer.system(f"Starting the model's serving container ({job.image})")
        state = serving_start(self.runtime, spec, job.team.slug)
        self.container_id = state.id
        self._follow_container_log(state.id, writer)
        address = serving_address(state, serving_network(self.runtime))
        try:
            if state.error:
                raise ServingStartFailed(f"the engine could not start the container: {state.error}")
            if address is None:
                raise ServingStartFailed("the container's serving port is not reachable")
            wait_until_ready(
                self.runtime,
                state.id,
                host=address[0],
                port=address[1],
                timeout=float(settings.ENDPOINT_STARTUP_TIMEOUT_SECONDS),
            )
        except ServingStartFailed as exc:
            self._check()  # a stop request ends the container: not a failure of the model
            raise ServingStartFailed(f"ClientError: {exc.message}") from exc
        self.address = address
        writer.system(f"The serving container answers /ping on {address[0]}:{address[1]}")

    def _address(self) -> tuple[str, int]:
        if self.address is None:
            raise RuntimeError("the serving container is not ready")
        return self.address

    def _plan(self) -> Plan:
        s = self.settings
        asked = execution_parameters(*self._address()) if plan_needs_container(s) else {}
        plan = plan_settle(s, asked)
        self.settings = {**s, "effective": plan_effective(s, plan)}
        Job.objects.filter(pk=self.job.pk).update(transform=self.settings)
        self._writer().system(
            f"SplitType {s['split_type']}"
            + (f", BatchStrategy {plan.strategy}" if s["split_type"] == "Line" else "")
            + f", MaxPayloadInMB {plan.max_payload_mb}, "
            f"MaxConcurrentTransforms {plan.concurrency}"
            + (" (from the container's /execution-parameters)" if asked else "")
        )
        return plan

    def _transform(self, objects: list[InputObject], plan: Plan) -> None:
        self.records_done = self.files_done = 0
        self._move(
            JobStatus.IN_PROGRESS,
            SecondaryStatus.TRANSFORMING,
            self._progress_message(),
            **self._progress(),
            records_total=self.records_total,
            files_total=self.files_total,
        )
        client = ModelClient(
            *self._address(),
            ModelClientConfig(
                content_type=self.settings["content_type"],
                accept=self.settings["accept"],
                timeout=float(self.settings["invocations_timeout_seconds"]),
                max_retries=self.settings["invocations_max_retries"],
            ),
            cancelled=self._cancel,
        )
        pool = ThreadPoolExecutor(plan.concurrency, thread_name_prefix=f"job-{self.job.pk}-call")
        feeder = Feeder(
            plan=plan,
            split_type=self.settings["split_type"],
            assemble_with=self.settings["assemble_with"],
            client=client,
            pool=pool,
            check=self._check,
            answered=self._answered,
            explain=self._invocation_failure,
        )
        try:
            store = get_store()
            output_key = store.key_from_uri(self.job.output_path)
            for item in objects:
                self._transform_object(item, feeder, store, output_key)
        finally:
            self._cancel.set()  # requests still in flight (after a failure) stop retrying
            pool.shutdown(wait=False, cancel_futures=True)
            client.close()

    def _transform_object(
        self, item: InputObject, feeder: Feeder, store: ArtifactStore, output_key: str
    ) -> None:
        started = time.monotonic()
        staged = work_dir(self.job) / "output" / (item.relative + ".out")
        staged.parent.mkdir(parents=True, exist_ok=True)
        with staged.open("wb") as out:
            requests = feeder.feed(item, out)
        key = f"{output_key}/{item.relative}.out"
        with staged.open("rb") as stream:
            store.put(key, stream, content_type=self.settings["accept"] or None)
        staged.unlink()
        self.files_done += 1
        self._report(self._progress_message(), counters=self._progress(), force=True)
        self._writer().system(
            f"{item.relative}: {item.records} records in {requests} requests, "
            f"{time.monotonic() - started:.1f} s -> {store.uri(key)}"
        )

    def _answered(self, batch: Batch) -> None:
        self.records_done += batch.records
        self._report(self._progress_message(), counters=self._progress())

    def _invocation_failure(self, item: InputObject, batch: Batch, error: InvocationFailed) -> str:
        return invocation_failure(
            item,
            batch,
            error,
            split_type=self.settings["split_type"],
            runtime=self.runtime,
            container_id=self.container_id,
        )

    # --- progress, stops and the end --------------------------------------------------------

    def _progress(self) -> dict[str, int]:
        return {"records_done": self.records_done, "files_done": self.files_done}

    def _progress_message(self) -> str:
        return (
            f"Transforming input data: {self.records_done}/{self.records_total} records, "
            f"{self.files_done}/{self.files_total} files"
        )

    def _report(
        self, message: str, *, counters: dict[str, int] | None = None, force: bool = False
    ) -> None:
        now = time.monotonic()
        if not force and now - self._last_report < PROGRESS_EVERY:
            return
        self._last_report = now
        job_progress(job_id=self.job.pk, message=message, lease=self.lease, **(counters or {}))

    def _check(self) -> None:
        self.lease.check()
        if self._interrupted.is_set():
            raise _Interrupted()

    def _stop_container(self, reason: str) -> None:
        """Called by the watchdog on a stop request or when the runtime limit passes: the
        transform stops sending, and the container is stopped (which also ends a wait for
        /ping)."""
        self._stop_sent.set()
        self._interrupted.set()
        self._cancel.set()
        if self.writer is not None:
            self.writer.system(reason)
        container_id = self.container_id
        if container_id is not None:
            threading.Thread(
                target=self._stop_quietly, args=(container_id,), name="job-stop", daemon=True
            ).start()

    def _stop_quietly(self, container_id: str) -> None:
        try:
            self.runtime.stop(
                container_id, min(SERVING_STOP_GRACE, settings.JOB_STOP_GRACE_SECONDS)
            )
        except StudioloError as exc:
            log.warning("job %s: could not stop container %s: %s", self.job.pk, container_id, exc)

    def _follow_container_log(self, container_id: str, writer: LogWriter) -> None:
        def follow() -> None:
            try:
                for chunk in self.runtime.logs(container_id, follow=True):
                    writer.feed(chunk.stream, chunk.data)
            except Exception:
                log.exception("job %s: following the serving container's log failed", self.job.pk)

        self._log_thread = threading.Thread(
            target=follow, name=f"job-{self.job.pk}-log", daemon=True
        )
        self._log_thread.start()

    def _remove_container(self) -> None:
        if self.container_id is None:
            return
        try:
            self.runtime.remove(self.container_id)
            serving_network_release(self.runtime, self.job.team.slug)  # if it was the last
        except (ContainerNotFound, StudioloError):
            log.warning("job %s: could not remove container %s", self.job.pk, self.container_id)
        self.container_id = None

    def _end(self, finish: Callable[[], object]) -> None:
        """Stop the container (its last lines reach the log), close the log, remove the
        container, then move the job to its final status: a finished job has nothing left
        running. A worker that lost the job touches nothing."""
        self._cancel.set()
        if self.container_id is not None:
            self._stop_quietly(self.container_id)
        if self._log_thread is not None:
            self._log_thread.join(timeout=15)
        self._close_log()
        self.lease.check()
        self._remove_container()
        try:
            finish()
        finally:
            self._cleanup()
        staged_models_prune()  # its model, unless an endpoint or another transform serves it

    def _end_failed(self, reason: str) -> None:
        if self._interrupted.is_set():
            self._end(self._stopped)  # what failed was cut short by the stop itself
        else:
            self._end(
                lambda: self._fail_job(
                    reason,
                    records_done=self.records_done,
                    files_done=self.files_done,
                )
            )

    def _completed(self) -> None:
        self.job.refresh_from_db()
        if self.job.status == JobStatus.IN_PROGRESS:
            try:
                self._move(
                    JobStatus.COMPLETED,
                    SecondaryStatus.COMPLETED,
                    MESSAGES[SecondaryStatus.COMPLETED],
                    **self._progress(),
                )
                return
            except IllegalTransition:
                self.job.refresh_from_db()  # stopped at the last moment
        self._stopped()

    def _stopped(self) -> None:
        self.job.refresh_from_db()
        if self.job.status in TERMINAL_STATUSES:
            return
        if self.job.status != JobStatus.STOPPING:
            self._fail_job("Platform error: the transform was interrupted")
            return
        final = (
            SecondaryStatus.MAX_RUNTIME_EXCEEDED
            if self.job.secondary_status == SecondaryStatus.MAX_RUNTIME_EXCEEDED
            else SecondaryStatus.STOPPED
        )
        self._move(
            JobStatus.STOPPED,
            final,
            f"{MESSAGES[final]} ({self.records_done}/{self.records_total} records, "
            f"{self.files_done}/{self.files_total} files done)",
            **self._progress(),
        )
