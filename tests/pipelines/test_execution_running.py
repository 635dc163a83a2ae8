"""The canonical pipeline end to end, as the SageMaker Python SDK wrote it (sdk/canonical.json),
its bucket changed to the team's: real workers, a real server for the CLI (the orchestrator on the control-plane worker,
the jobs on the job worker), real containers, real files in the store. Preprocess (sklearn
split) → Train (script mode) → Evaluate (evaluation.json, a property file) → CheckAccuracy
(accuracy ≥ `threshold`) → RegisterModel (PendingManualApproval, with the metrics) else
AccuracyTooLow (Fail, with the accuracy in its message). Started twice, at the same time, with
two thresholds (one through `studiolo pipelines start --wait`): one registers a package, the
other fails with the message."""

from __future__ import annotations

import io
import json
import random
import statistics
import tarfile
import time
from pathlib import Path

import pytest
from django.contrib.auth.models import User

from jobs.models import Job, JobStatus
from pipelines.models import (
    EXECUTION_TERMINAL,
    ExecutionStatus,
    Pipeline,
    PipelineExecution,
    StepStatus,
)
from pipelines.services import execution_start, execution_stop, pipeline_create
from registry.models import ApprovalStatus
from studio.accounts.buckets import team_bucket
from studio.accounts.models import Team
from studio.artifacts import get_store
from studio.cli.main import main
from tests.factories import make_team, make_token, make_user
from tests.pipelines.support import FIXTURES
from tests.workers import Worker

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.slow,
    pytest.mark.parametrize("runtime_name", ["docker"], indirect=True),
]

SDK = FIXTURES / "sdk"
SDK_BUCKET = "studiolo-sdk-fixtures"


def sdk_pipeline_in(team: Team, user: User) -> Pipeline:
    """canonical.json with its bucket renamed to the team's, the objects the SDK uploaded at
    their keys in that bucket, and a raw CSV where `input_data`'s default points."""
    store = get_store()
    area = f"teams/{team.slug}/"
    uploads = SDK / "s3"
    for path in (uploads / "studiolo-canonical").rglob("*"):
        if path.is_file():
            store.put(area + str(path.relative_to(uploads)), path.read_bytes())
    rng = random.Random(7)
    rows = []
    for _ in range(400):  # label first, no header: two features that separate the classes
        label = rng.randint(0, 1)
        rows.append(f"{label},{label * 2 + rng.gauss(0, 0.6):.4f},{rng.gauss(0, 1):.4f}")
    store.put(area + "canonical/raw/data.csv", ("\n".join(rows) + "\n").encode())
    # The SDK's train.py declares `--C`, but a one-letter hyperparameter reaches the script as
    # `-C` (SageMaker's training toolkit, and ours, write `-k` for one-letter names): the
    # fixture's script would fail on SageMaker too. The same script, declaring both.
    key = next(k for k in _keys(uploads) if k.endswith("sourcedir.tar.gz"))
    script = (SDK / "code" / "train" / "train.py").read_text()
    store.put(area + key, _tar_gz("train.py", script.replace('"--C",', '"-C", "--C",')))
    text = (SDK / "canonical.json").read_text().replace(SDK_BUCKET, team_bucket(team))
    return pipeline_create(team=team, name="canonical", definition=json.loads(text), actor=user)


def _keys(uploads: Path) -> list[str]:
    return [str(p.relative_to(uploads)) for p in (uploads / "studiolo-canonical").rglob("*")]


def _tar_gz(name: str, text: str) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        data = text.encode()
        member = tarfile.TarInfo(name)
        member.size = len(data)
        archive.addfile(member, io.BytesIO(data))
    return buffer.getvalue()


def wait_for(execution: PipelineExecution, timeout: float = 400) -> PipelineExecution:
    deadline = time.monotonic() + timeout
    while True:
        execution.refresh_from_db()
        if execution.status in EXECUTION_TERMINAL:
            return execution
        if time.monotonic() > deadline:
            steps = list(execution.steps.values_list("step_name", "status", "failure_reason"))
            pytest.fail(f"execution {execution.pk} still {execution.status}: {steps}")
        time.sleep(0.25)


def test_the_sdks_canonical_pipeline_registers_above_the_threshold_and_fails_below(
    worker: Worker,
    use_runtime: str,
    asgi_server: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    team = make_team()  # a slug of its own: the store outlives each test's database
    user = make_user(team, role="scientist")
    pipeline = sdk_pipeline_in(team, user)
    monkeypatch.setenv("STUDIOLO_URL", asgi_server)
    monkeypatch.setenv("STUDIOLO_TOKEN", make_token(user))

    began = time.monotonic()
    low = execution_start(pipeline=pipeline, actor=user, parameters={"threshold": "0.5"})
    # The other through the CLI, which follows it while the first runs alongside.
    argv = ["pipelines", "start", "canonical", "--param", "threshold=1.01", "--wait"]
    assert main(argv) == 1  # Failed
    high = PipelineExecution.objects.exclude(pk=low.pk).get()
    low = wait_for(low)
    elapsed = time.monotonic() - began
    printed = capsys.readouterr()
    assert "  Train: Executing (job canonical-" in printed.out
    assert "  AccuracyTooLow: Failed: Accuracy " in printed.out
    assert f"Execution {high.pk} Failed: Accuracy " in printed.err

    steps = dict(low.steps.values_list("step_name", "status"))
    reasons = dict(low.steps.values_list("step_name", "failure_reason"))
    assert low.status == ExecutionStatus.SUCCEEDED, (low.failure_reason, reasons)
    assert steps == {
        "Preprocess": StepStatus.SUCCEEDED,
        "Train": StepStatus.SUCCEEDED,
        "Evaluate": StepStatus.SUCCEEDED,
        "CheckAccuracy": StepStatus.SUCCEEDED,
        "CheckRegisterEnabled": StepStatus.SUCCEEDED,
        "RegisterModel-RegisterModel": StepStatus.SUCCEEDED,
        "AccuracyTooLow": StepStatus.NOT_EXECUTED,
    }
    register = low.steps.get(step_name="RegisterModel-RegisterModel")
    package = register.model_package
    assert package is not None
    assert package.group.name == "studiolo-canonical"
    assert package.approval_status == ApprovalStatus.PENDING
    train = low.steps.get(step_name="Train").job
    assert train is not None
    assert package.source_job_id == train.pk
    accuracy = package.metrics["accuracy"]
    assert 0.5 <= accuracy <= 1.0
    assert register.outputs["ModelPackageArn"] == "studiolo:model-package/studiolo-canonical/1"
    # The training job ran the SDK's script mode: train.py from sourcedir.tar.gz, C from a
    # parameter, the SDK's own sagemaker_* settings left out of the script's arguments.
    assert (train.entry_point, train.hyperparameters) == (
        "train.py",
        {"C": "1.0", "max_iter": "200"},
    )
    assert train.instance_type == "ml.local.small"  # ml.m5.large is not a studio type

    high.refresh_from_db()
    assert high.status == ExecutionStatus.FAILED
    assert high.failure_reason == f"Accuracy {accuracy} is below the threshold 1.01"
    high_steps = dict(high.steps.values_list("step_name", "status"))
    assert high_steps["AccuracyTooLow"] == StepStatus.FAILED
    assert high_steps["CheckRegisterEnabled"] == StepStatus.NOT_EXECUTED
    assert high_steps["RegisterModel-RegisterModel"] == StepStatus.NOT_EXECUTED
    assert high.steps.filter(model_package__isnull=False).count() == 0
    # Three jobs each, named after their execution and step: none ran twice.
    names = sorted(Job.objects.filter(team=team).values_list("name", flat=True))
    assert names == sorted(
        f"canonical-{e.pk}-{s}" for e in (low, high) for s in ("Preprocess", "Train", "Evaluate")
    )
    # Scheduling overhead: a step's job ended → the next step's job created (the orchestrator)
    # and → its container running (with the engine's start and the inputs' download).
    created, running = [], []
    for execution in (low, high):
        jobs = {s.step_name: s.job for s in execution.steps.select_related("job") if s.job}
        for before, after in (("Preprocess", "Train"), ("Train", "Evaluate")):
            ended = jobs[before].ended_at
            assert ended is not None
            created.append((jobs[after].created_at - ended).total_seconds())
            if jobs[after].training_started_at:
                running.append((jobs[after].training_started_at - ended).total_seconds())
    assert max(created) < 10, created
    print(  # noqa: T201 - figures for the report
        f"two canonical executions in {elapsed:.1f} s; job ended → next job created: "
        f"p50 {statistics.median(created):.2f} s (max {max(created):.2f}); → running: "
        f"p50 {statistics.median(running or [0]):.2f} s"
    )


def test_stopping_an_execution_stops_its_running_job_and_starts_nothing_more(
    worker: Worker, use_runtime: str
) -> None:
    team = make_team()
    user = make_user(team, role="scientist")
    sleep = {
        "AppSpecification": {
            "ImageUri": "studiolo/sklearn:latest",
            "ContainerEntrypoint": ["python3", "-c", "import time; time.sleep(300)"],
        },
        "ProcessingResources": {"ClusterConfig": {"InstanceType": "ml.m5.large"}},
    }
    document = {
        "Version": "2020-12-01",
        "Parameters": [],
        "Steps": [
            {"Name": "Sleep", "Type": "Processing", "Arguments": sleep},
            {"Name": "After", "Type": "Processing", "Arguments": sleep, "DependsOn": ["Sleep"]},
        ],
    }
    pipeline = pipeline_create(team=team, name="sleepy", definition=document, actor=user)
    execution = execution_start(pipeline=pipeline, actor=user)
    deadline = time.monotonic() + 120
    while not Job.objects.filter(team=team, status=JobStatus.IN_PROGRESS).exists():
        assert time.monotonic() < deadline, "the first step's job never ran"
        time.sleep(0.1)

    execution_stop(execution=execution, actor=user)
    execution = wait_for(execution, timeout=120)
    assert execution.status == ExecutionStatus.STOPPED
    steps = dict(execution.steps.values_list("step_name", "status"))
    assert steps == {"Sleep": StepStatus.STOPPED, "After": StepStatus.STOPPED}
    assert list(Job.objects.filter(team=team).values_list("name", "status")) == [
        (f"sleepy-{execution.pk}-Sleep", JobStatus.STOPPED)
    ]
