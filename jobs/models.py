"""Jobs: a container run under the SageMaker `/opt/ml` contract, and its history.

Status has one writer, `jobs.services.lifecycle.job_transition`; every change of primary or
secondary status appends a `JobTransition` row.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models

from studio.transitions import TransitionLog


class JobStatus(models.TextChoices):
    PENDING = "Pending", "Pending"  # accepted, waiting for a worker
    IN_PROGRESS = "InProgress", "In progress"  # a worker owns it: preparing, running, uploading
    COMPLETED = "Completed", "Completed"  # exit code 0, artifacts uploaded
    FAILED = "Failed", "Failed"  # non-zero exit, OOM, bad input found late, or platform failure
    STOPPING = (
        "Stopping",
        "Stopping",
    )  # stop requested or runtime limit hit; container being stopped
    STOPPED = "Stopped", "Stopped"  # stopped; what the script saved was still uploaded


ACTIVE_STATUSES = frozenset({JobStatus.PENDING, JobStatus.IN_PROGRESS, JobStatus.STOPPING})
TERMINAL_STATUSES = frozenset({JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.STOPPED})

# Primary status moves only along these edges. A change of secondary status alone (same
# primary) is allowed while the job is active.
ALLOWED_TRANSITIONS: dict[str, frozenset[str]] = {
    JobStatus.PENDING: frozenset({JobStatus.IN_PROGRESS, JobStatus.STOPPED, JobStatus.FAILED}),
    JobStatus.IN_PROGRESS: frozenset({JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.STOPPING}),
    JobStatus.STOPPING: frozenset({JobStatus.STOPPED, JobStatus.FAILED}),
    JobStatus.COMPLETED: frozenset(),
    JobStatus.FAILED: frozenset(),
    JobStatus.STOPPED: frozenset(),
}


class SecondaryStatus(models.TextChoices):
    # SageMaker's names: the SDK prints these while it waits.
    STARTING = "Starting", "Starting"
    DOWNLOADING = "Downloading", "Downloading"
    TRAINING = "Training", "Training"
    UPLOADING = "Uploading", "Uploading"
    COMPLETED = "Completed", "Completed"
    FAILED = "Failed", "Failed"
    STOPPING = "Stopping", "Stopping"
    STOPPED = "Stopped", "Stopped"
    MAX_RUNTIME_EXCEEDED = "MaxRuntimeExceeded", "Max runtime exceeded"
    INTERRUPTED = "Interrupted", "Interrupted"
    # Batch transform: the model's serving container answers the job's requests.
    TRANSFORMING = "Transforming", "Transforming"
    # Processing: the processing container runs (SageMaker reports no secondary status for
    # processing jobs; the studio shows this one so every kind reads alike).
    PROCESSING = "Processing", "Processing"


# The phase the job's runtime limit counts (`training_started_at` .. `training_ended_at`).
RUNNING_PHASES = frozenset(
    {SecondaryStatus.TRAINING, SecondaryStatus.TRANSFORMING, SecondaryStatus.PROCESSING}
)


class JobKind(models.TextChoices):
    TRAINING = "training", "Training"  # runs the image's `train` under /opt/ml
    TRANSFORM = "transform", "Batch transform"  # the model's `serve`, fed the input's records
    PROCESSING = "processing", "Processing"  # the image's entrypoint under /opt/ml/processing


class Job(models.Model):
    team = models.ForeignKey("accounts.Team", on_delete=models.PROTECT, related_name="jobs")
    name = models.CharField(max_length=63)
    kind = models.CharField(max_length=16, choices=JobKind.choices, default=JobKind.TRAINING)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    # What to run.
    image = models.CharField(max_length=512)
    framework = models.CharField(max_length=32, blank=True)
    entry_point = models.CharField(max_length=256, blank=True)
    source_uri = models.CharField(max_length=1024, blank=True)
    hyperparameters = models.JSONField(default=dict, blank=True)  # str -> str, as SageMaker
    environment = models.JSONField(default=dict, blank=True)
    container_entrypoint = models.JSONField(null=True, blank=True)
    container_arguments = models.JSONField(null=True, blank=True)
    input_channels = models.JSONField(
        default=list, blank=True
    )  # [{name, uri, content_type, input_mode}]
    output_path = models.CharField(max_length=1024)
    metric_definitions = models.JSONField(default=list, blank=True)  # [{name, regex}]
    # Batch transform only: the model, the input and how it is split, batched and assembled
    # (`transform.services.TransformSettings`, as a dict). `image`, `environment` and
    # `output_path` above hold the serving image, the request's environment and the
    # S3OutputPath.
    transform = models.JSONField(default=dict, blank=True)
    # Processing only: `jobs.services.processing.ProcessingSettings` as a dict (the inputs,
    # outputs and AppSpecification of CreateProcessingJob, checked). `image`,
    # `container_entrypoint`, `container_arguments` and `environment` above hold the
    # AppSpecification and Environment as for training.
    processing = models.JSONField(default=dict, blank=True)
    # CheckpointConfig: {"uri": <store URI>, "local_path": "/opt/ml/checkpoints"} or {}.
    checkpoint = models.JSONField(default=dict, blank=True)

    # Where and how long.
    instance_type = models.CharField(max_length=64)
    instance_count = models.PositiveSmallIntegerField(default=1)
    max_runtime_seconds = models.PositiveIntegerField(default=86400)
    enable_network = models.BooleanField(default=False)

    # Lifecycle (written only by jobs.services.lifecycle).
    status = models.CharField(max_length=16, choices=JobStatus.choices, default=JobStatus.PENDING)
    secondary_status = models.CharField(
        max_length=32, choices=SecondaryStatus.choices, default=SecondaryStatus.STARTING
    )
    status_message = models.CharField(max_length=512, blank=True)
    failure_reason = models.TextField(blank=True)
    stop_requested_at = models.DateTimeField(null=True, blank=True)
    training_started_at = models.DateTimeField(null=True, blank=True)
    training_ended_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)
    # Which runtime runs it, so a restarted worker knows where to look for the container.
    runtime = models.CharField(max_length=16, blank=True)
    exit_code = models.IntegerField(null=True, blank=True)
    # The worker that currently drives the job holds a lease it renews every few seconds.
    # A lease that runs out means the worker died: reconciliation hands the job to another,
    # which re-attaches to the container by its labels (jobs/lease.py).
    lease_owner = models.CharField(max_length=128, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    # The fencing token: +1 at every take-over. A runner's writes about the job carry the
    # generation it took, so one that lost its lease writes nothing more.
    lease_generation = models.PositiveBigIntegerField(default=0)
    # When the job's task was handed to the broker. Null while that failed (Redis away at
    # submission): reconciliation hands it over once the broker answers (jobs/reconcile.py).
    dispatched_at = models.DateTimeField(null=True, blank=True)
    # The submitter's `Idempotency-Key` and a digest of the request it came with: the same
    # key and body again is answered with this job, never a second one.
    idempotency_key = models.CharField(max_length=255, blank=True)
    request_digest = models.CharField(max_length=64, blank=True)

    # Results.
    model_artifact_uri = models.CharField(max_length=1024, blank=True)
    output_artifact_uri = models.CharField(max_length=1024, blank=True)
    run = models.OneToOneField(
        "experiments.Run", null=True, blank=True, on_delete=models.SET_NULL, related_name="job"
    )
    log_line_count = models.PositiveIntegerField(default=0)
    # Batch transform progress (written by its runner through job_progress). For SplitType
    # None a record is a whole input object.
    records_done = models.PositiveBigIntegerField(default=0)
    records_total = models.PositiveBigIntegerField(default=0)
    files_done = models.PositiveIntegerField(default=0)
    files_total = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["team", "name"], name="job_unique_name_per_team"),
            models.UniqueConstraint(
                fields=["created_by", "idempotency_key"],
                condition=~models.Q(idempotency_key=""),
                name="job_unique_idempotency_key",
            ),
        ]
        indexes = [
            models.Index(fields=["team", "-created_at"], name="job_team_time"),
            models.Index(fields=["status"], name="job_status"),
        ]
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.name

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES


class JobTransition(TransitionLog):
    """Append-only history of a job's primary status (`from_status` → `to_status`, the same
    while only the secondary status moves) and secondary status."""

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="transitions")
    secondary_status = models.CharField(max_length=32, choices=SecondaryStatus.choices)

    def __str__(self) -> str:
        return f"{self.to_status}/{self.secondary_status}"


class JobLogLine(models.Model):
    """Every line a job printed, numbered from 1 in the order it arrived."""

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="+")
    seq = models.PositiveIntegerField()
    stream = models.CharField(max_length=6)  # stdout | stderr | system | track (jobs/tracking.py)
    # Which of the job's instances printed it ("algo-1" ... "algo-N"); empty for the
    # platform's own lines about the whole job.
    host = models.CharField(max_length=16, blank=True)
    at = models.DateTimeField()
    line = models.TextField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["job", "seq"], name="joblog_unique_job_seq"),
        ]

    def __str__(self) -> str:
        return f"{self.seq}: {self.line[:60]}"
