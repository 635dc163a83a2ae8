"""Pipelines' business rules: creating a pipeline and updating its definition (a new version
only when the definition changed), the diff between two versions, and the one writer of an
execution's and a step's status.

Who may: creating or updating a pipeline is the same action as submitting a job
(`job.submit`, scientists and up): a pipeline is a plan of jobs. Every change is audited.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from typing import Any

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser, User
from django.db import IntegrityError, transaction
from django.utils import timezone

from jobs.models import JobStatus
from jobs.services.lifecycle import job_stop
from pipelines.definition import (
    Definition,
    definition_digest,
    definition_parse,
    parameter_values,
    pretty_json,
)
from pipelines.models import (
    EXECUTION_ACTIVE,
    EXECUTION_TERMINAL,
    EXECUTION_TRANSITIONS,
    PIPELINE_NAME_MAX,
    STEP_ACTIVE,
    STEP_TERMINAL,
    STEP_TRANSITIONS,
    ExecutionStatus,
    ExecutionTransition,
    Pipeline,
    PipelineExecution,
    PipelineVersion,
    StepExecution,
    StepStatus,
    StepTransition,
)
from pipelines.selectors import pipeline_version
from pipelines.tasks import advance_execution
from studio.accounts.models import Team
from studio.accounts.roles import Action
from studio.accounts.services import require_permission
from studio.audit.services import audit_record
from studio.errors import Conflict, ValidationError
from studio.events import publish_team_event
from studio.transitions import actor_label

Actor = AbstractBaseUser | AnonymousUser | None

# SageMaker's PipelineName pattern.
_PIPELINE_NAME = re.compile(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,255}")
PIPELINE_NAME_RULE = "1-256 letters, digits and hyphens, starting and ending with a letter or digit"
MAX_DESCRIPTION = 3072  # SageMaker's PipelineDescription: at most 3072 characters


def _user(actor: Actor) -> User | None:
    return actor if isinstance(actor, User) else None


def _description(text: str, field: str) -> str:
    if len(text) > MAX_DESCRIPTION:
        raise ValidationError(f"{field}: at most {MAX_DESCRIPTION} characters", field=field)
    return text


def pipeline_create(
    *,
    team: Team,
    name: str,
    definition: object,
    actor: Actor,
    description: str = "",
    version_description: str = "",
) -> Pipeline:
    """A new pipeline with `definition` (a JSON text or document, checked) as version 1."""
    require_permission(user=actor, team=team, action=Action.SUBMIT_JOB)
    if (
        not isinstance(name, str)
        or len(name) > PIPELINE_NAME_MAX
        or not _PIPELINE_NAME.fullmatch(name)
    ):
        raise ValidationError(f"name: {PIPELINE_NAME_RULE}", field="name")
    parsed = definition_parse(definition)
    try:
        with transaction.atomic():
            pipeline = Pipeline.objects.create(
                team=team,
                name=name,
                description=_description(description, "description"),
                created_by=_user(actor),
            )
            version = _version_add(pipeline, parsed, actor, version_description)
            audit_record(
                actor=actor,
                action="pipeline.created",
                target=pipeline,
                team=team,
                details={"version": version.number, "digest": version.digest},
            )
    except IntegrityError as exc:
        raise ValidationError(
            f"name: a pipeline named {name!r} exists already", field="name"
        ) from exc
    return pipeline


def pipeline_update(
    *,
    pipeline: Pipeline,
    actor: Actor,
    definition: object | None = None,
    description: str | None = None,
    version_description: str = "",
) -> tuple[PipelineVersion, bool]:
    """A new version when `definition`'s digest differs from the newest version's; the
    newest version and False otherwise. `description` (the pipeline's) changes when given."""
    require_permission(user=actor, team=pipeline.team, action=Action.SUBMIT_JOB)
    parsed = None if definition is None else definition_parse(definition)
    with transaction.atomic():
        # The lock orders concurrent updates: each sees the version the one before wrote.
        locked = Pipeline.objects.select_for_update().get(pk=pipeline.pk)
        latest = pipeline_version(locked)
        changes: dict[str, Any] = {}
        if description is not None and description != locked.description:
            locked.description = _description(description, "description")
            changes["description"] = True
        created = parsed is not None and parsed.digest != latest.digest
        if parsed is not None and created:
            latest = _version_add(locked, parsed, actor, version_description)
            changes.update(version=latest.number, digest=latest.digest)
        if changes:
            locked.save(update_fields=["description", "updated_at"])
            audit_record(
                actor=actor,
                action="pipeline.updated",
                target=locked,
                team=locked.team,
                details=changes,
            )
    pipeline.description = locked.description
    return latest, created


def _version_add(
    pipeline: Pipeline, parsed: Definition, actor: Actor, description: str
) -> PipelineVersion:
    last = pipeline.versions.order_by("-number").values_list("number", flat=True).first()
    return PipelineVersion.objects.create(
        pipeline=pipeline,
        number=(last or 0) + 1,
        definition=dict(parsed.document),
        digest=definition_digest(parsed.document),
        description=_description(description, "version_description"),
        created_by=_user(actor),
    )


def version_diff(*, pipeline: Pipeline, a: int, b: int) -> str:
    """A unified diff from version `a` to version `b` of the canonical pretty JSON ("" when
    they are the same)."""
    old, new = pipeline_version(pipeline, a), pipeline_version(pipeline, b)
    lines = difflib.unified_diff(
        pretty_json(old.definition).splitlines(keepends=True),
        pretty_json(new.definition).splitlines(keepends=True),
        fromfile=f"{pipeline.name} v{a}",
        tofile=f"{pipeline.name} v{b}",
    )
    return "".join(lines)


# --- executions: records and their one status writer -------------------------------------------


def execution_create(
    *,
    pipeline: Pipeline,
    actor: Actor,
    parameters: Mapping[str, object] | None = None,
    version: PipelineVersion | None = None,
    display_name: str = "",
) -> PipelineExecution:
    """The record of an execution of `version` (the newest by default), Executing, with every
    parameter's typed value, and no step rows: `execution_start` is what starts one."""
    require_permission(user=actor, team=pipeline.team, action=Action.SUBMIT_JOB)
    version = version or pipeline_version(pipeline)
    values = parameter_values(definition_parse(version.definition), parameters or {})
    with transaction.atomic():
        execution = PipelineExecution.objects.create(
            pipeline=pipeline,
            version=version,
            display_name=display_name,
            parameters=values,
            started_by=_user(actor),
        )
        ExecutionTransition.objects.create(
            execution=execution,
            from_status="",
            to_status=ExecutionStatus.EXECUTING,
            message="started",
            actor_name=actor_label(actor),
        )
        audit_record(
            actor=actor,
            action="pipeline.execution_started",
            target=execution,
            team=pipeline.team,
            details={"pipeline": pipeline.name, "version": version.number, "parameters": values},
        )
    return execution


def execution_transition(
    *,
    execution: PipelineExecution,
    to: ExecutionStatus,
    actor: Actor | str = None,
    message: str = "",
) -> bool:
    """Move the execution to `to` if the table allows it from its current status (read
    under a row lock); False, with nothing written, when it is there already. Conflict when
    the move is not allowed."""
    with transaction.atomic():
        locked = PipelineExecution.objects.select_for_update().get(pk=execution.pk)
        current = locked.status
        if current == to:
            return False
        if to not in EXECUTION_TRANSITIONS[current]:
            raise Conflict(
                f"execution {locked.pk} is {current}: it cannot become {to}", field="status"
            )
        now = timezone.now()
        locked.status = to
        locked.ended_at = now if to in EXECUTION_TERMINAL else None
        fields = ["status", "ended_at"]
        if to == ExecutionStatus.FAILED:
            locked.failure_reason = message
            fields.append("failure_reason")
        locked.save(update_fields=fields)
        ExecutionTransition.objects.create(
            execution=locked,
            from_status=current,
            to_status=to,
            message=message,
            actor_name=actor_label(actor),
        )
    execution.status, execution.ended_at = locked.status, locked.ended_at
    execution.failure_reason = locked.failure_reason
    return True


def step_execution_create(
    *, execution: PipelineExecution, step_name: str, actor: Actor | str = None
) -> StepExecution:
    """A step of `execution` (one of its version's definition), Starting."""
    definition = definition_parse(execution.version.definition)
    if step_name not in {s.name for s in definition.steps}:
        raise ValidationError(f"step: the definition has no step {step_name!r}", field="step")
    with transaction.atomic():
        step = StepExecution.objects.create(
            execution=execution,
            step_name=step_name,
            step_type=definition.step(step_name).type,
            status=StepStatus.STARTING,
            started_at=timezone.now(),
            attempts=1,
        )
        StepTransition.objects.create(
            step=step, from_status="", to_status=StepStatus.STARTING, actor_name=actor_label(actor)
        )
    return step


def step_transition(
    *,
    step: StepExecution,
    to: StepStatus,
    actor: Actor | str = None,
    message: str = "",
    outputs: Mapping[str, Any] | None = None,
) -> bool:
    """The one writer of a step's status, like `execution_transition`. Starting again (a
    retry) counts an attempt; a terminal status records its end, a failure its reason."""
    with transaction.atomic():
        locked = StepExecution.objects.select_for_update().get(pk=step.pk)
        current = locked.status
        if current == to:
            return False
        if to not in STEP_TRANSITIONS[current]:
            raise Conflict(
                f"step {locked.step_name!r} is {current}: it cannot become {to}", field="status"
            )
        locked.status = to
        locked.ended_at = timezone.now() if to in STEP_TERMINAL else None
        fields = ["status", "ended_at"]
        if to == StepStatus.STARTING:
            locked.started_at = locked.started_at or timezone.now()
            locked.attempts += 1
            locked.failure_reason = ""
            fields += ["started_at", "attempts", "failure_reason"]
        if to == StepStatus.FAILED:
            locked.failure_reason = message
            fields.append("failure_reason")
        if outputs is not None:
            locked.outputs = dict(outputs)
            fields.append("outputs")
        locked.save(update_fields=fields)
        StepTransition.objects.create(
            step=locked,
            from_status=current,
            to_status=to,
            message=message,
            actor_name=actor_label(actor),
        )
    for name in ("status", "started_at", "ended_at", "attempts", "failure_reason", "outputs"):
        setattr(step, name, getattr(locked, name))
    return True


# --- running executions ------------------------------------------------------------------------


def execution_start(
    *,
    pipeline: Pipeline,
    actor: Actor,
    parameters: Mapping[str, object] | None = None,
    version: PipelineVersion | None = None,
    display_name: str = "",
) -> PipelineExecution:
    """Start an execution of `version` (the newest by default): parameters typed and checked
    (400 naming the parameter), every step recorded Pending, and the orchestrator's first
    pass sent once this commits."""
    with transaction.atomic():
        execution = execution_create(
            pipeline=pipeline,
            actor=actor,
            parameters=parameters,
            version=version,
            display_name=display_name,
        )
        definition = definition_parse(execution.version.definition)
        StepExecution.objects.bulk_create(
            StepExecution(execution=execution, step_name=step.name, step_type=step.type)
            for step in definition.steps
        )
        publish_execution(execution)
        advance_execution.delay_on_commit(execution.pk)
    return execution


def execution_stop(*, execution: PipelineExecution, actor: Actor) -> PipelineExecution:
    """Stop an active execution: no step starts any more, running jobs are asked to stop,
    and the orchestrator ends it Stopped when none runs. Asking again while it stops changes
    nothing; Conflict when it has ended."""
    require_permission(user=actor, team=execution.pipeline.team, action=Action.STOP_JOB)
    if execution.status not in EXECUTION_ACTIVE:
        raise Conflict(
            f"execution {execution.pk} is {execution.status}; only an executing one can be stopped",
            field="status",
        )
    with transaction.atomic():
        if not execution_transition(
            execution=execution, to=ExecutionStatus.STOPPING, actor=actor, message="stop asked"
        ):
            return execution  # stopping already: asking again changes nothing
        audit_record(
            actor=actor,
            action="pipeline.execution_stop_requested",
            target=execution,
            team=execution.pipeline.team,
            details={"pipeline": execution.pipeline.name},
        )
        publish_execution(execution)
        running = execution.steps.filter(status__in=STEP_ACTIVE, job__isnull=False)
        for step in running.select_related("job__team"):
            if step.job is not None and step.job.status in (
                JobStatus.PENDING,
                JobStatus.IN_PROGRESS,
            ):
                job_stop(job=step.job, actor=actor)
        advance_execution.delay_on_commit(execution.pk)
    return execution


def publish_execution(execution: PipelineExecution, *, step: StepExecution | None = None) -> None:
    """A team event (after commit) for the execution's status, or one of its steps'."""
    data: dict[str, Any] = {
        "execution": execution.pk,
        "pipeline": execution.pipeline.name,
        "status": execution.status,
    }
    if step is not None:
        data["step"] = {
            "name": step.step_name,
            "status": step.status,
            "job": step.job_id,
            "failure_reason": step.failure_reason,
        }
    publish_team_event(
        team_id=execution.pipeline.team_id,
        team_slug=execution.pipeline.team.slug,
        event="pipeline.execution",
        data=data,
    )
