"""The orchestrator: one pass over an execution that moves it as far as it can go now.

`execution_advance` runs under the execution's row lock (select_for_update), so two workers
never decide for the same execution at once, and everything a pass decides commits together.
A pass:

1. records the end of every step whose job has ended (its properties, or its job's failure);
2. when the execution is Stopping: ends it Stopped once no step is running;
3. otherwise starts every Pending step whose dependencies all Succeeded (independent steps
   start in the same pass: they run in parallel) and evaluates Condition, Fail and
   RegisterModel steps inline; a Condition's untaken branch, and every step after a step that
   did not run, becomes NotExecuted; after a failure no new step starts;
4. ends the execution once no step is running: Succeeded when no step failed, else Failed
   with the failing step's reason (the steps left waiting become NotExecuted).

Idempotent: a step's job is created in the same transaction as the step's move to Executing,
named `<pipeline>-<execution>-<step>` (pipelines.steps.step_job_name), so a pass that is
repeated, or one that a killed worker never finished (its transaction rolled back), cannot
start a step twice. Passes are triggered by a job's end (jobs' job-ended hook, registered in
PipelinesConfig.ready), by a start or a stop, and by the periodic `pipelines.advance_active`
backstop (studio/schedules.py).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from typing import Any

from django.db import transaction
from django.utils import timezone

from jobs.models import TERMINAL_STATUSES, JobStatus
from pipelines.definition import (
    Context,
    Definition,
    ExpressionError,
    Step,
    StepType,
    condition_holds,
    definition_parse,
    resolve,
)
from pipelines.models import (
    EXECUTION_ACTIVE,
    STEP_ACTIVE,
    ExecutionStatus,
    PipelineExecution,
    StepExecution,
    StepStatus,
)
from pipelines.services import (
    execution_transition,
    publish_execution,
    step_transition,
)
from pipelines.steps import (
    StepRefused,
    job_properties,
    job_start,
    not_supported_reason,
    package_properties,
    read_json,
    register_model,
    step_job_name,
)
from studio.audit.services import audit_record
from studio.errors import StudioloError

log = logging.getLogger(__name__)
ORCHESTRATOR = "orchestrator"


def execution_advance(execution_id: int) -> str | None:
    """One pass (see the module's docstring). Returns the execution's status after it, or
    None when there is no such execution."""
    with transaction.atomic():
        execution = (
            PipelineExecution.objects.select_for_update(of=("self",))
            .select_related("pipeline__team", "version", "started_by")
            .filter(pk=execution_id)
            .first()
        )
        if execution is None:
            return None
        if execution.status in EXECUTION_ACTIVE:
            _Pass(execution).run()
        return execution.status


class _PropertyFiles(Mapping[tuple[str, str], Any]):
    """The property files of the steps that succeeded, read from the store when asked for."""

    def __init__(self, definition: Definition, rows: Mapping[str, StepExecution], team: Any):
        self._declared = {
            (step.name, pf.name): pf
            for step in definition.steps
            for pf in step.property_files
            if rows[step.name].status == StepStatus.SUCCEEDED
        }
        self._rows, self._team = rows, team
        self._read: dict[tuple[str, str], Any] = {}

    def __getitem__(self, key: tuple[str, str]) -> Any:
        if key not in self._read:
            declared = self._declared[key]
            outputs = (
                self._rows[key[0]].outputs.get("ProcessingOutputConfig", {}).get("Outputs", [])
            )
            match = [o for o in outputs if o.get("OutputName") == declared.output_name]
            if not match:
                raise ExpressionError(
                    f"property file {key[1]!r} of step {key[0]!r}: the step has no output "
                    f"{declared.output_name!r}"
                )
            uri = f"{match[0]['S3Output']['S3Uri'].rstrip('/')}/{declared.file_path}"
            try:
                self._read[key] = read_json(self._team, uri)
            except StepRefused as error:
                raise ExpressionError(
                    f"property file {key[1]!r} of step {key[0]!r}: {error.message}"
                ) from error
        return self._read[key]

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self._declared)

    def __len__(self) -> int:
        return len(self._declared)


class _Pass:
    def __init__(self, execution: PipelineExecution) -> None:
        self.execution = execution
        self.team = execution.pipeline.team
        self.actor = execution.started_by
        self.definition = definition_parse(execution.version.definition)
        self.rows = {
            row.step_name: row
            for row in StepExecution.objects.filter(execution=execution).select_related("job")
        }
        for step in self.definition.steps:  # an execution made before its steps were
            if step.name not in self.rows:
                self.rows[step.name] = StepExecution.objects.create(
                    execution=execution, step_name=step.name, step_type=step.type
                )

    # --- the pass -------------------------------------------------------------------------

    def run(self) -> None:
        self._collect_jobs()
        if self.execution.status == ExecutionStatus.STOPPING:
            for row in self._with(StepStatus.PENDING):
                self._move(row, StepStatus.STOPPED, "the execution was stopped")
            if not self._with(*STEP_ACTIVE):
                self._end(ExecutionStatus.STOPPED, "stopped")
            return
        progressed = True
        while progressed:
            progressed = False
            for step in self.definition.steps:
                if self.rows[step.name].status == StepStatus.PENDING:
                    progressed |= self._decide(step)
        if not self._with(*STEP_ACTIVE):
            self._finish()

    def _decide(self, step: Step) -> bool:
        row = self.rows[step.name]
        dependencies = [self.rows[name] for name in sorted(step.dependencies)]
        skipped = [d for d in dependencies if d.status in (StepStatus.NOT_EXECUTED,)]
        if skipped:
            return self._move(
                row, StepStatus.NOT_EXECUTED, f"step {skipped[0].step_name!r} did not run"
            )
        if self._failed() or any(d.status != StepStatus.SUCCEEDED for d in dependencies):
            return False
        self._move(row, StepStatus.STARTING, "its dependencies succeeded")
        try:
            reason = not_supported_reason(step)
            if reason:
                raise StepRefused(reason)
            if step.type in (StepType.PROCESSING, StepType.TRAINING):
                self._start_job(step, row)
            elif step.type == StepType.CONDITION:
                self._condition(step, row)
            elif step.type == StepType.FAIL:
                message = resolve(step.arguments.get("ErrorMessage", ""), self._context())
                self._move(row, StepStatus.FAILED, str(message))
            elif step.type == StepType.REGISTER_MODEL:
                self._register(step, row)
            else:
                raise StepRefused(f"{step.type} steps are not yet supported in this studio")
        except StudioloError as error:  # a step that cannot run as written fails, with why
            self._move(row, StepStatus.FAILED, error.message)
        return True

    def _start_job(self, step: Step, row: StepExecution) -> None:
        name = step_job_name(self.execution.pipeline.name, self.execution.pk, step.name)
        # A savepoint: a refused job leaves nothing behind, and the step fails with why.
        with transaction.atomic():
            job = job_start(
                step=step,
                context=self._context(),
                team=self.team,
                actor=self.actor,
                name=name,
                experiment=self.execution.pipeline.name,
            )
            StepExecution.objects.filter(pk=row.pk).update(job=job)
            row.job = job
            self._move(row, StepStatus.EXECUTING, f"job {job.name}")

    def _condition(self, step: Step, row: StepExecution) -> None:
        context = self._context()
        outcome = all(condition_holds(c, context) for c in step.arguments.get("Conditions", []))
        self._move(row, StepStatus.SUCCEEDED, f"outcome {outcome}", outputs={"Outcome": outcome})
        untaken = step.else_steps if outcome else step.if_steps
        branch = "ElseSteps" if outcome else "IfSteps"
        for name in untaken:
            self._move(
                self.rows[name],
                StepStatus.NOT_EXECUTED,
                f"{step.name}'s conditions were {str(outcome).lower()}: its {branch} did not run",
            )

    def _register(self, step: Step, row: StepExecution) -> None:
        with transaction.atomic():
            package = register_model(
                step=step,
                context=self._context(),
                team=self.team,
                actor=self.actor,
                description=f"pipeline {self.execution.pipeline.name}, execution "
                f"{self.execution.pk}, step {step.name}",
            )
            StepExecution.objects.filter(pk=row.pk).update(model_package=package)
            row.model_package = package
            self._move(
                row,
                StepStatus.SUCCEEDED,
                f"model package {package.group.name} v{package.version}",
                outputs=package_properties(package),
            )

    def _collect_jobs(self) -> None:
        for row in self._with(StepStatus.EXECUTING):
            job = row.job
            if job is None:
                continue
            job.refresh_from_db()
            if job.status not in TERMINAL_STATUSES:
                continue
            if job.status == JobStatus.COMPLETED:
                self._move(
                    row,
                    StepStatus.SUCCEEDED,
                    f"job {job.name} completed",
                    outputs=job_properties(job, self.team),
                )
            elif job.status == JobStatus.STOPPED:
                self._move(row, StepStatus.STOPPED, f"job {job.name} was stopped")
            else:
                reason = job.failure_reason or job.status_message or "no reason given"
                self._move(row, StepStatus.FAILED, f"job {job.name} failed: {reason}")

    def _finish(self) -> None:
        failed = self._with(StepStatus.FAILED)
        if failed:
            for row in self._with(StepStatus.PENDING):
                self._move(row, StepStatus.NOT_EXECUTED, f"step {failed[0].step_name!r} failed")
            first = failed[0]
            reason = (
                first.failure_reason
                if first.step_type == StepType.FAIL
                else f"step {first.step_name} failed: {first.failure_reason}"
            )
            self._end(ExecutionStatus.FAILED, reason)
        elif not self._with(StepStatus.PENDING):
            self._end(ExecutionStatus.SUCCEEDED, "every step that ran succeeded")

    # --- helpers --------------------------------------------------------------------------

    def _with(self, *statuses: str) -> list[StepExecution]:
        order = {step.name: i for i, step in enumerate(self.definition.steps)}
        rows = [row for row in self.rows.values() if row.status in statuses]
        return sorted(rows, key=lambda row: (row.ended_at or timezone.now(), order[row.step_name]))

    def _failed(self) -> bool:
        return any(row.status == StepStatus.FAILED for row in self.rows.values())

    def _move(
        self,
        row: StepExecution,
        to: StepStatus,
        message: str,
        outputs: Mapping[str, Any] | None = None,
    ) -> bool:
        moved = step_transition(
            step=row, to=to, actor=ORCHESTRATOR, message=message, outputs=outputs
        )
        if moved:
            publish_execution(self.execution, step=row)
        return moved

    def _end(self, to: ExecutionStatus, message: str) -> None:
        if execution_transition(
            execution=self.execution, to=to, actor=ORCHESTRATOR, message=message
        ):
            audit_record(
                actor=None,
                action=f"pipeline.execution_{to.lower()}",
                target=self.execution,
                team=self.team,
                details={"pipeline": self.execution.pipeline.name, "message": message},
            )
            publish_execution(self.execution)

    def _context(self) -> Context:
        execution = self.execution
        execution_id = str(execution.pk)
        return Context(
            parameters=execution.parameters,
            steps={
                name: row.outputs
                for name, row in self.rows.items()
                if row.status == StepStatus.SUCCEEDED
            },
            property_files=_PropertyFiles(self.definition, self.rows, self.team),
            execution={
                "PipelineName": execution.pipeline.name,
                "PipelineArn": f"studiolo:pipeline/{execution.pipeline.name}",
                "PipelineExecutionId": execution_id,
                "PipelineExecutionArn": f"studiolo:pipeline/{execution.pipeline.name}/"
                f"execution/{execution_id}",
                "StartDateTime": execution.started_at.isoformat(),
                "CurrentDateTime": timezone.now().isoformat(),
            },
            experiment={"ExperimentName": execution.pipeline.name, "TrialName": execution_id},
            read_json=lambda uri: read_json(self.team, uri),
        )
