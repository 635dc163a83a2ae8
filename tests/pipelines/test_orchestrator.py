"""The orchestrator's decisions, with jobs whose outcomes the tests write: which steps start
and when, the branch a Condition skips, Fail messages, failures and their reasons, property
files, stopping, and that a repeated pass starts nothing twice. (Real jobs and containers:
test_execution_running.py.)"""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.contrib.auth.models import User

from jobs.models import Job, JobKind, JobStatus
from pipelines import orchestrator, tasks
from pipelines.definition import Context, Step, resolve
from pipelines.models import ExecutionStatus, PipelineExecution, StepStatus
from pipelines.orchestrator import execution_advance
from pipelines.services import execution_start, execution_stop, pipeline_create
from pipelines.steps import instance_type_for, step_job_name
from studio.accounts.models import Team
from studio.artifacts import get_store
from studio.artifacts.keys import team_prefix
from studio.audit.models import AuditEvent
from studio.errors import Conflict, ValidationError
from studio.names import is_name
from tests.factories import make_team, make_user

pytestmark = pytest.mark.django_db

REPORT = {"Get": "Steps.Evaluate.PropertyFiles.Report"}
ACCURACY = {"Std:JsonGet": {"PropertyFile": REPORT, "Path": "metrics.accuracy.value"}}


def document() -> dict[str, Any]:
    """Prepare and Other (independent) → Evaluate (a property file) → Check (accuracy ≥
    threshold) → Ok (a nested condition) else TooLow (Fail with the accuracy)."""
    output = {"OutputName": "report", "S3Output": {"S3Uri": "", "LocalPath": "/opt/ml/x"}}
    return {
        "Version": "2020-12-01",
        "Parameters": [{"Name": "threshold", "Type": "Float", "DefaultValue": 0.8}],
        "Steps": [
            {"Name": "Prepare", "Type": "Processing", "Arguments": {}},
            {"Name": "Other", "Type": "Processing", "Arguments": {}},
            {
                "Name": "Evaluate",
                "Type": "Processing",
                "DependsOn": ["Prepare"],
                "Arguments": {"ProcessingOutputConfig": {"Outputs": [output]}},
                "PropertyFiles": [
                    {"PropertyFileName": "Report", "OutputName": "report", "FilePath": "ev.json"}
                ],
            },
            {
                "Name": "Check",
                "Type": "Condition",
                "Arguments": {
                    "Conditions": [
                        {
                            "Type": "GreaterThanOrEqualTo",
                            "LeftValue": ACCURACY,
                            "RightValue": {"Get": "Parameters.threshold"},
                        }
                    ],
                    "IfSteps": [
                        {
                            "Name": "Ok",
                            "Type": "Condition",
                            "Arguments": {
                                "Conditions": [{"Type": "Equals", "LeftValue": 1, "RightValue": 1}],
                                "IfSteps": [],
                                "ElseSteps": [],
                            },
                        }
                    ],
                    "ElseSteps": [
                        {
                            "Name": "TooLow",
                            "Type": "Fail",
                            "Arguments": {
                                "ErrorMessage": {
                                    "Std:Join": {
                                        "On": " ",
                                        "Values": ["accuracy", ACCURACY, "is below the threshold"],
                                    }
                                }
                            },
                        }
                    ],
                },
            },
        ],
    }


class FakeJobs:
    """Stands in for `job_start`: records each start and makes a Pending job whose outputs
    are in the store, for the test to end as it likes."""

    def __init__(self, team: Team) -> None:
        self.team = team
        self.started: list[str] = []
        self.arguments: dict[str, Any] = {}

    def __call__(
        self, *, step: Step, context: Context, team: Team, actor: Any, name: str, experiment: str
    ) -> Job:
        self.arguments[step.name] = resolve(dict(step.arguments), context)
        self.started.append(step.name)
        store = get_store()
        uri = store.uri(f"{team_prefix(team)}runs/{name}/report")
        return Job.objects.create(
            team=team,
            name=name,
            kind=JobKind.PROCESSING,
            image="studiolo/sklearn:latest",
            output_path=uri,
            instance_type="ml.local.small",
            input_channels=[],
            processing={
                "inputs": [],
                "outputs": [
                    {"name": "report", "uri": uri, "local_path": "/x", "upload_mode": "EndOfJob"}
                ],
                "code": "",
                "exit_message": "",
            },
        )

    def end(
        self,
        execution: PipelineExecution,
        step: str,
        status: str = JobStatus.COMPLETED,
        reason: str = "",
    ) -> None:
        job = execution.steps.get(step_name=step).job
        assert job is not None
        Job.objects.filter(pk=job.pk).update(status=status, failure_reason=reason)
        execution_advance(execution.pk)


@pytest.fixture
def team() -> Team:
    return make_team("orch")


@pytest.fixture
def scientist(team: Team) -> User:
    return make_user(team, role="scientist")


@pytest.fixture
def jobs(team: Team, monkeypatch: pytest.MonkeyPatch) -> FakeJobs:
    fake = FakeJobs(team)
    monkeypatch.setattr(orchestrator, "job_start", fake)
    return fake


def start(
    team: Team, user: User, doc: dict[str, Any] | None = None, **params: Any
) -> PipelineExecution:
    pipeline = pipeline_create(team=team, name="flow", definition=doc or document(), actor=user)
    execution = execution_start(pipeline=pipeline, actor=user, parameters=params)
    execution_advance(execution.pk)
    return execution


def statuses(execution: PipelineExecution) -> dict[str, str]:
    return dict(execution.steps.values_list("step_name", "status"))


def write_report(jobs: FakeJobs, execution: PipelineExecution, report: object) -> None:
    job = execution.steps.get(step_name="Evaluate").job
    assert job is not None
    store = get_store()
    key = store.key_from_uri(job.processing["outputs"][0]["uri"]) + "/ev.json"
    store.put(key, json.dumps(report).encode())


def test_a_start_records_every_step_pending_and_starts_the_independent_ones_together(
    team: Team, scientist: User, jobs: FakeJobs
) -> None:
    execution = start(team, scientist)
    assert jobs.started == ["Prepare", "Other"]
    assert statuses(execution) == {
        "Prepare": "Executing",
        "Other": "Executing",
        "Evaluate": "Pending",
        "Check": "Pending",
        "Ok": "Pending",
        "TooLow": "Pending",
    }
    prepare = execution.steps.get(step_name="Prepare")
    assert prepare.job is not None
    assert prepare.job.name == f"flow-{execution.pk}-Prepare"


def test_a_repeated_pass_starts_nothing_twice(team: Team, scientist: User, jobs: FakeJobs) -> None:
    execution = start(team, scientist)
    execution_advance(execution.pk)
    execution_advance(execution.pk)
    assert jobs.started == ["Prepare", "Other"]
    assert Job.objects.filter(team=team).count() == 2


def test_a_step_starts_once_its_dependencies_succeeded_with_their_properties(
    team: Team, scientist: User, jobs: FakeJobs
) -> None:
    execution = start(team, scientist)
    jobs.end(execution, "Other")
    assert "Evaluate" not in jobs.started
    jobs.end(execution, "Prepare")
    assert jobs.started == ["Prepare", "Other", "Evaluate"]
    prepare = execution.steps.get(step_name="Prepare")
    assert prepare.status == StepStatus.SUCCEEDED
    assert prepare.outputs["ProcessingJobName"] == f"flow-{execution.pk}-Prepare"
    uri = prepare.outputs["ProcessingOutputConfig"]["Outputs"][0]["S3Output"]["S3Uri"]
    assert uri == f"s3://studiolo-orch/runs/flow-{execution.pk}-Prepare/report"


def test_accuracy_above_the_threshold_takes_the_if_branch_and_succeeds(
    team: Team, scientist: User, jobs: FakeJobs
) -> None:
    execution = start(team, scientist, threshold="0.5")
    jobs.end(execution, "Prepare")
    jobs.end(execution, "Other")
    write_report(jobs, execution, {"metrics": {"accuracy": {"value": 0.9}}})
    jobs.end(execution, "Evaluate")
    execution.refresh_from_db()
    assert statuses(execution) == {
        "Prepare": "Succeeded",
        "Other": "Succeeded",
        "Evaluate": "Succeeded",
        "Check": "Succeeded",
        "Ok": "Succeeded",
        "TooLow": "NotExecuted",
    }
    assert execution.steps.get(step_name="Check").outputs == {"Outcome": True}
    assert execution.status == ExecutionStatus.SUCCEEDED
    actions = AuditEvent.objects.filter(object_id=str(execution.pk)).values_list(
        "action", flat=True
    )
    assert {"pipeline.execution_started", "pipeline.execution_succeeded"} <= set(actions)


def test_accuracy_below_the_threshold_fails_with_the_fail_steps_message(
    team: Team, scientist: User, jobs: FakeJobs
) -> None:
    execution = start(team, scientist, threshold=0.95)
    jobs.end(execution, "Prepare")
    jobs.end(execution, "Other")
    write_report(jobs, execution, {"metrics": {"accuracy": {"value": 0.9}}})
    jobs.end(execution, "Evaluate")
    execution.refresh_from_db()
    assert statuses(execution)["Ok"] == "NotExecuted"
    assert statuses(execution)["TooLow"] == "Failed"
    assert execution.status == ExecutionStatus.FAILED
    assert execution.failure_reason == "accuracy 0.9 is below the threshold"


def test_a_json_get_path_missing_fails_the_step_naming_the_path_and_the_file(
    team: Team, scientist: User, jobs: FakeJobs
) -> None:
    execution = start(team, scientist)
    jobs.end(execution, "Prepare")
    jobs.end(execution, "Other")
    write_report(jobs, execution, {"metrics": {}})
    jobs.end(execution, "Evaluate")
    check = execution.steps.get(step_name="Check")
    assert check.status == StepStatus.FAILED
    assert "metrics.accuracy.value" in check.failure_reason
    assert "'Report'" in check.failure_reason
    execution.refresh_from_db()
    assert execution.status == ExecutionStatus.FAILED
    assert execution.failure_reason.startswith("step Check failed: ")
    assert statuses(execution)["Ok"] == statuses(execution)["TooLow"] == "NotExecuted"


def test_a_failed_job_fails_its_step_and_the_execution_after_the_running_ones_end(
    team: Team, scientist: User, jobs: FakeJobs
) -> None:
    execution = start(team, scientist)
    jobs.end(execution, "Prepare", JobStatus.FAILED, "AlgorithmError: exit code 3")
    execution.refresh_from_db()
    assert execution.status == ExecutionStatus.EXECUTING  # Other still runs
    jobs.end(execution, "Other")
    execution.refresh_from_db()
    assert execution.status == ExecutionStatus.FAILED
    assert execution.failure_reason == (
        f"step Prepare failed: job flow-{execution.pk}-Prepare failed: AlgorithmError: exit code 3"
    )
    assert statuses(execution)["Evaluate"] == "NotExecuted"
    assert jobs.started == ["Prepare", "Other"]


def test_a_stopped_execution_stops_its_jobs_and_ends_stopped(
    team: Team, scientist: User, jobs: FakeJobs
) -> None:
    execution = start(team, scientist)
    execution_stop(execution=execution, actor=scientist)
    assert set(Job.objects.filter(team=team).values_list("status", flat=True)) == {"Stopped"}
    execution_advance(execution.pk)
    execution.refresh_from_db()
    assert execution.status == ExecutionStatus.STOPPED
    assert statuses(execution)["Prepare"] == "Stopped"
    assert statuses(execution)["Evaluate"] == "Stopped"
    with pytest.raises(Conflict):
        execution_stop(execution=execution, actor=scientist)


def test_a_parameter_of_the_wrong_type_is_refused_naming_it(
    team: Team, scientist: User, jobs: FakeJobs
) -> None:
    pipeline = pipeline_create(team=team, name="flow", definition=document(), actor=scientist)
    with pytest.raises(ValidationError) as caught:
        execution_start(pipeline=pipeline, actor=scientist, parameters={"threshold": "high"})
    assert caught.value.field == "parameters.threshold"
    assert not PipelineExecution.objects.exists()


def test_steps_not_supported_yet_fail_with_a_clear_reason(
    team: Team, scientist: User, jobs: FakeJobs
) -> None:
    doc = {
        "Version": "2020-12-01",
        "Parameters": [],
        "Steps": [{"Name": "Batch", "Type": "Transform", "Arguments": {}}],
    }
    execution = start(team, scientist, doc)
    execution.refresh_from_db()
    assert execution.status == ExecutionStatus.FAILED
    assert "batch transform steps are not yet supported in this studio" in execution.failure_reason


def test_data_outside_the_team_bucket_fails_the_step_saying_what_to_change(
    team: Team, scientist: User
) -> None:
    doc = {
        "Version": "2020-12-01",
        "Parameters": [],
        "Steps": [
            {
                "Name": "Split",
                "Type": "Processing",
                "Arguments": {
                    "AppSpecification": {"ImageUri": "studiolo/sklearn:latest"},
                    "ProcessingResources": {
                        "ClusterConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1}
                    },
                    "ProcessingInputs": [
                        {
                            "InputName": "raw",
                            "S3Input": {"S3Uri": "s3://other-bucket/raw", "LocalPath": "/opt/ml/r"},
                        }
                    ],
                },
            }
        ],
    }
    execution = start(team, scientist, doc)
    step = execution.steps.get(step_name="Split")
    assert step.status == StepStatus.FAILED
    assert "s3://other-bucket/raw is not in this team's bucket" in step.failure_reason
    assert "s3://studiolo-orch/" in step.failure_reason


def test_job_names_are_valid_and_the_same_every_time() -> None:
    assert step_job_name("flow", 7, "Train") == "flow-7-Train"
    long = step_job_name("p" * 60, 12345, "RegisterModel-RegisterModel_x")
    assert len(long) <= 63
    assert long == step_job_name("p" * 60, 12345, "RegisterModel-RegisterModel_x")
    assert step_job_name("flow", 7, "a_b") != step_job_name("flow", 7, "a-b")
    assert is_name(step_job_name("flow", 7, "a_b"))


def test_an_unknown_sagemaker_instance_type_runs_on_the_smallest_type() -> None:
    assert instance_type_for("ml.m5.large") == "ml.local.small"
    assert instance_type_for("ml.local.large") == "ml.local.large"


def test_the_backstop_and_the_job_ended_hook_advance_the_execution(
    team: Team, scientist: User, jobs: FakeJobs, monkeypatch: pytest.MonkeyPatch
) -> None:
    pipeline = pipeline_create(team=team, name="flow", definition=document(), actor=scientist)
    execution = execution_start(pipeline=pipeline, actor=scientist)  # its task not sent here
    assert jobs.started == []
    tasks.advance_active()
    assert jobs.started == ["Prepare", "Other"]

    sent: list[int] = []
    monkeypatch.setattr(tasks.advance_execution, "delay", sent.append)
    prepare = execution.steps.get(step_name="Prepare").job
    assert prepare is not None
    tasks.advance_for_job(prepare.pk)
    tasks.advance_for_job(prepare.pk + 1000)  # a job no step ran: nothing
    assert sent == [execution.pk]
