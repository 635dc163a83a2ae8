"""Pipelines: a team's named, versioned definitions (SageMaker's pipeline JSON), their
executions and each execution's steps.

A version is written once and never changes: an execution records the version it ran. An
execution's and a step's status move only through `pipelines.services.executions`, one locked
transition at a time along the tables below, each appended to its log with who, when and why.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models

from studio.transitions import TransitionLog

PIPELINE_NAME_MAX = 256  # SageMaker's PipelineName: 1-256 characters


class Pipeline(models.Model):
    team = models.ForeignKey("accounts.Team", on_delete=models.PROTECT, related_name="pipelines")
    name = models.CharField(max_length=PIPELINE_NAME_MAX)
    description = models.TextField(blank=True)
    # For the triggers to come: a paused pipeline is not started by a schedule or an event.
    paused = models.BooleanField(default=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["team", "name"], name="pipeline_unique_name_per_team"),
        ]
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class PipelineVersion(models.Model):
    pipeline = models.ForeignKey(Pipeline, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()  # 1, 2, ... within the pipeline
    definition = models.JSONField()
    # sha256 of the canonical JSON (pipelines.definition.canonical_json): an update with the
    # same digest makes no new version.
    digest = models.CharField(max_length=64)
    description = models.TextField(blank=True)  # what changed, in the author's words
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["pipeline", "number"], name="pipeline_version_unique_number"
            ),
        ]
        ordering = ["pipeline", "-number"]

    def __str__(self) -> str:
        return f"{self.pipeline.name} v{self.number}"


class ExecutionStatus(models.TextChoices):
    # SageMaker's PipelineExecutionStatus values.
    EXECUTING = "Executing", "Executing"  # steps are running or waiting for their dependencies
    STOPPING = "Stopping", "Stopping"  # a stop was asked; running steps are being stopped
    STOPPED = "Stopped", "Stopped"  # stopped before it finished
    FAILED = "Failed", "Failed"  # a step failed (or a Fail step ran)
    SUCCEEDED = "Succeeded", "Succeeded"  # every step that ran succeeded


EXECUTION_TRANSITIONS: dict[str, frozenset[str]] = {
    ExecutionStatus.EXECUTING: frozenset(
        {ExecutionStatus.SUCCEEDED, ExecutionStatus.FAILED, ExecutionStatus.STOPPING}
    ),
    ExecutionStatus.STOPPING: frozenset({ExecutionStatus.STOPPED, ExecutionStatus.FAILED}),
    # RetryPipelineExecution starts a failed execution again from its failed steps.
    ExecutionStatus.FAILED: frozenset({ExecutionStatus.EXECUTING}),
    ExecutionStatus.STOPPED: frozenset(),
    ExecutionStatus.SUCCEEDED: frozenset(),
}
EXECUTION_ACTIVE = frozenset({ExecutionStatus.EXECUTING, ExecutionStatus.STOPPING})
EXECUTION_TERMINAL = frozenset(
    {ExecutionStatus.SUCCEEDED, ExecutionStatus.FAILED, ExecutionStatus.STOPPED}
)


class PipelineExecution(models.Model):
    pipeline = models.ForeignKey(Pipeline, on_delete=models.PROTECT, related_name="executions")
    version = models.ForeignKey(
        PipelineVersion, on_delete=models.PROTECT, related_name="executions"
    )
    display_name = models.CharField(max_length=256, blank=True)
    status = models.CharField(
        max_length=16, choices=ExecutionStatus.choices, default=ExecutionStatus.EXECUTING
    )
    parameters = models.JSONField(default=dict, blank=True)  # {name: typed value}, all of them
    started_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    started_at = models.DateTimeField(auto_now_add=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    failure_reason = models.TextField(blank=True)

    class Meta:
        indexes = [models.Index(fields=["status"], name="pipeline_execution_status")]
        ordering = ["-started_at", "-id"]

    def __str__(self) -> str:
        return f"{self.pipeline.name} execution {self.pk}"


class ExecutionTransition(TransitionLog):
    """Append-only history of an execution's status."""

    execution = models.ForeignKey(
        PipelineExecution, on_delete=models.CASCADE, related_name="transitions"
    )

    def __str__(self) -> str:
        return f"{self.from_status} -> {self.to_status}"


class StepStatus(models.TextChoices):
    # SageMaker's StepStatus values, and two of the studio's own for steps that never ran.
    PENDING = "Pending", "Pending"  # waiting for its dependencies; nothing started yet
    STARTING = "Starting", "Starting"  # its dependencies are done; its job is being created
    EXECUTING = "Executing", "Executing"  # its job runs
    SUCCEEDED = "Succeeded", "Succeeded"  # done, outputs recorded (or a cache hit)
    FAILED = "Failed", "Failed"  # its job failed, or an expression could not be evaluated
    STOPPED = "Stopped", "Stopped"  # its execution was stopped
    # On the branch a Condition did not take, after a step that did not run, or left
    # waiting when its execution ended (a failure elsewhere): it never ran and never will.
    NOT_EXECUTED = "NotExecuted", "Not executed"


STEP_TRANSITIONS: dict[str, frozenset[str]] = {
    StepStatus.PENDING: frozenset(
        {StepStatus.STARTING, StepStatus.NOT_EXECUTED, StepStatus.STOPPED}
    ),
    StepStatus.STARTING: frozenset(
        {StepStatus.EXECUTING, StepStatus.SUCCEEDED, StepStatus.FAILED, StepStatus.STOPPED}
    ),
    StepStatus.EXECUTING: frozenset(
        # Executing → Starting: a retry policy starts the step's work again.
        {StepStatus.SUCCEEDED, StepStatus.FAILED, StepStatus.STOPPED, StepStatus.STARTING}
    ),
    # Failed → Starting: RetryPipelineExecution runs a failed step again.
    StepStatus.FAILED: frozenset({StepStatus.STARTING}),
    StepStatus.SUCCEEDED: frozenset(),
    StepStatus.STOPPED: frozenset(),
    StepStatus.NOT_EXECUTED: frozenset(),
}
STEP_TERMINAL = frozenset(
    {StepStatus.SUCCEEDED, StepStatus.FAILED, StepStatus.STOPPED, StepStatus.NOT_EXECUTED}
)
STEP_ACTIVE = frozenset({StepStatus.STARTING, StepStatus.EXECUTING})


class StepExecution(models.Model):
    execution = models.ForeignKey(PipelineExecution, on_delete=models.CASCADE, related_name="steps")
    step_name = models.CharField(max_length=256)
    step_type = models.CharField(max_length=32)  # pipelines.definition.StepType
    status = models.CharField(max_length=16, choices=StepStatus.choices, default=StepStatus.PENDING)
    started_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    job = models.ForeignKey(
        "jobs.Job", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    model_package = models.ForeignKey(
        "registry.ModelPackage",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="pipeline_steps",
    )
    outputs = models.JSONField(default=dict, blank=True)  # the step's properties, when done
    failure_reason = models.TextField(blank=True)
    cache_hit = models.BooleanField(default=False)
    # The execution a cache hit took its result from.
    cache_source = models.ForeignKey(
        PipelineExecution, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    attempts = models.PositiveSmallIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["execution", "step_name"], name="step_execution_unique_step"
            ),
        ]
        ordering = ["execution", "id"]

    def __str__(self) -> str:
        return f"{self.step_name} ({self.status})"


class StepTransition(TransitionLog):
    """Append-only history of a step's status within one execution."""

    step = models.ForeignKey(StepExecution, on_delete=models.CASCADE, related_name="transitions")

    def __str__(self) -> str:
        return f"{self.from_status} -> {self.to_status}"
