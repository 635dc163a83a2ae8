"""Submitting batch transform jobs: what is accepted and stored, what is refused with a 400
naming the field (before anything starts), and the registry's rule that only Approved
packages are used. Nothing runs here: the hand-off to the worker queue is recorded only."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client

from endpoints.services.models import model_create_from_package
from jobs.models import Job, JobKind, JobStatus, SecondaryStatus
from jobs.runner import run_job
from jobs.services.lifecycle import job_status_payload, job_transition
from registry.models import ModelPackage
from registry.services.approval import package_decide
from studio.accounts.models import Team
from studio.artifacts import get_store
from studio.audit.models import AuditEvent
from tests.factories import make_team, make_token, make_user
from tests.transform.support import TransformApi, put_inputs, register_model

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _process_runtime(settings: Any) -> None:
    settings.RUNTIME = "process"  # every image "exists"; nothing is started


class Setup:
    def __init__(self, client: Client, sent: list[Any]) -> None:
        self.team: Team = make_team("lab")
        self.author: User = make_user(self.team, role="scientist")
        self.approver: User = make_user(self.team, role="approver")
        self.api = TransformApi(client, self.team, make_token(self.author))
        self.package: ModelPackage = register_model(self.team, self.author, self.approver)
        self.input_uri = put_inputs(self.team, "batch", {"a.csv": "1,2\n", "more/b.csv": "3\n"})
        self.sent = sent

    def body(self, **overrides: Any) -> dict[str, Any]:
        body: dict[str, Any] = {
            "name": "score-1",
            "model": "summer/1",
            "input_uri": self.input_uri,
            "instance_type": "ml.local.small",
            "content_type": "text/csv",
            "split_type": "Line",
        }
        body.update(overrides)
        return {key: value for key, value in body.items() if value is not None}


@pytest.fixture
def setup(client: Client, monkeypatch: pytest.MonkeyPatch) -> Setup:
    sent: list[Any] = []
    monkeypatch.setattr("jobs.tasks.run_job.apply_async", lambda *a, **k: sent.append((a, k)))
    return Setup(client, sent)


def test_a_valid_request_stores_a_pending_transform_job_and_queues_it(
    setup: Setup, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        response = setup.api.post(
            setup.body(
                batch_strategy="MultiRecord",
                max_payload_mb=2,
                max_concurrent_transforms=4,
                accept="text/csv",
                assemble_with="Line",
                environment={"THRESHOLD": "0.5"},
            )
        )
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["kind"], body["status"], body["name"]) == ("transform", "Pending", "score-1")
    assert body["image"] == setup.package.image
    assert body["environment"] == {"THRESHOLD": "0.5"}
    assert body["output_path"].endswith("teams/lab/jobs/score-1/output")
    assert body["progress"] == {
        "records_done": 0,
        "records_total": 0,
        "files_done": 0,
        "files_total": 0,
    }
    assert body["transform"] == {
        "model": "summer/1",
        "model_package_id": setup.package.pk,
        "serving_model_id": None,
        "model_artifact_uri": setup.package.artifact_uri,
        "program": "",
        "model_environment": {},
        "input_uri": setup.input_uri,
        "content_type": "text/csv",
        "split_type": "Line",
        "compression_type": "None",
        "batch_strategy": "MultiRecord",
        "max_payload_mb": 2,
        "max_concurrent_transforms": 4,
        "accept": "text/csv",
        "assemble_with": "Line",
        "invocations_timeout_seconds": 600,
        "invocations_max_retries": 3,
    }
    job = Job.objects.get(pk=body["id"])
    assert job.kind == JobKind.TRANSFORM
    assert job.run is not None
    assert job.run.experiment.name == "transform-jobs"
    assert setup.sent == [((), {"args": [job.pk], "queue": "jobs.ml.local.small"})]
    event = AuditEvent.objects.get(action="job.created", object_id=str(job.pk))
    assert event.details["kind"] == "transform"
    assert event.details["model"] == "summer/1"


def test_transform_jobs_are_listed_described_and_filtered_with_the_other_jobs(
    setup: Setup,
) -> None:
    job_id = int(setup.api.post(setup.body()).json()["id"])
    listed = setup.api.client.get("/api/v1/jobs?kind=transform", **setup.api.auth).json()
    assert [job["id"] for job in listed["results"]] == [job_id]
    training = setup.api.client.get("/api/v1/jobs?kind=training", **setup.api.auth).json()
    assert training["results"] == []
    assert setup.api.describe(job_id)["transitions"][0]["status"] == "Pending"


def test_a_model_made_for_endpoints_can_be_named_instead_of_a_package(setup: Setup) -> None:
    model = model_create_from_package(
        team=setup.team,
        actor=setup.author,
        name="summer-live",
        package=setup.package,
        environment={"MODEL_FLAVOUR": "mild"},
    )
    response = setup.api.post(setup.body(model="summer-live"))
    assert response.status_code == 201, response.content
    settings = response.json()["transform"]
    assert settings["serving_model_id"] == model.pk
    assert settings["model_package_id"] == setup.package.pk
    assert settings["model_environment"] == {"MODEL_FLAVOUR": "mild"}


@pytest.mark.parametrize("decision", [None, "reject"])
def test_a_package_that_is_not_approved_is_refused_with_the_reason(
    client: Client, monkeypatch: pytest.MonkeyPatch, decision: str | None
) -> None:
    monkeypatch.setattr("jobs.tasks.run_job.apply_async", lambda *a, **k: None)
    team = make_team()
    author = make_user(team, role="scientist")
    package = register_model(team, author, None, group="draft")
    if decision:
        package_decide(
            package=package,
            actor=make_user(team, role="approver"),
            decision=decision,
            comment="not good enough",
        )
    api = TransformApi(client, team, make_token(author))
    response = api.post(
        {
            "name": "score-draft",
            "model": "draft/1",
            "input_uri": put_inputs(team, "batch", {"a.csv": "1\n"}),
            "instance_type": "ml.local.small",
        }
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["field"] == "model"
    status = "Rejected" if decision else "PendingManualApproval"
    assert error["message"] == (
        f"model: draft/1 is {status}; only Approved packages can be deployed"
    )
    assert not Job.objects.filter(name="score-draft").exists()


@pytest.mark.django_db(transaction=True)
def test_a_package_rejected_after_submission_fails_the_job_when_it_starts(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("jobs.tasks.run_job.apply_async", lambda *a, **k: None)
    setup = Setup(client, [])
    job_id = int(setup.api.post(setup.body()).json()["id"])
    package_decide(
        package=setup.package, actor=setup.approver, decision="reject", comment="leaks labels"
    )
    run_job(job_id)  # what the worker does; the package check comes before any container
    job = Job.objects.get(pk=job_id)
    assert job.status == JobStatus.FAILED
    assert (
        job.failure_reason == "model: summer/1 is Rejected; only Approved packages can be deployed"
    )


def test_a_viewer_cannot_submit_a_transform_job(setup: Setup, client: Client) -> None:
    viewer = TransformApi(client, setup.team, make_token(make_user(setup.team, role="viewer")))
    assert viewer.post(setup.body()).status_code == 403


OTHER_TEAM_INPUT = "other-team-input"
INSIDE_INPUT = "inside-input"
BAD_FIELDS = [
    ({"name": "bad_name"}, "name"),
    ({"instance_type": "ml.p5.huge"}, "instance_type"),
    ({"instance_count": 2}, "instance_count"),
    ({"max_runtime_seconds": 0}, "max_runtime_seconds"),
    ({"model": ""}, "model"),
    ({"model": "summer/latest"}, "model"),
    ({"model": "winter/1"}, "model"),
    ({"model": "summer/2"}, "model"),
    ({"model": "no-such-model"}, "model"),
    ({"input_uri": ""}, "input_uri"),
    ({"input_uri": "s3://elsewhere/data"}, "input_uri"),
    ({"input_uri": OTHER_TEAM_INPUT}, "input_uri"),
    ({"input_uri": "MISSING"}, "input_uri"),
    ({"content_type": "text/csv\r\nX-Injected: 1"}, "content_type"),
    ({"accept": "x" * 257}, "accept"),
    ({"split_type": "RecordIO"}, "split_type"),
    ({"split_type": "Lines"}, "split_type"),
    ({"compression_type": "Gzip"}, "compression_type"),
    ({"batch_strategy": "AllAtOnce"}, "batch_strategy"),
    ({"split_type": "None", "batch_strategy": "MultiRecord"}, "batch_strategy"),
    ({"max_payload_mb": 0}, "max_payload_mb"),
    ({"max_payload_mb": 101}, "max_payload_mb"),
    ({"max_concurrent_transforms": 101}, "max_concurrent_transforms"),
    ({"max_payload_mb": 20, "max_concurrent_transforms": 6}, "max_concurrent_transforms"),
    ({"assemble_with": "Newline"}, "assemble_with"),
    ({"environment": {f"V{i}": "x" for i in range(17)}}, "environment"),
    ({"environment": {"1BAD": "x"}}, "environment"),
    ({"environment": {"LONG": "x" * 10241}}, "environment.LONG"),
    ({"invocations_timeout_seconds": 0}, "invocations_timeout_seconds"),
    ({"invocations_timeout_seconds": 3601}, "invocations_timeout_seconds"),
    ({"invocations_max_retries": 4}, "invocations_max_retries"),
    ({"output_path": "s3://elsewhere/out"}, "output_path"),
    ({"output_path": INSIDE_INPUT}, "output_path"),
]


@pytest.mark.parametrize(("overrides", "field"), BAD_FIELDS)
def test_each_bad_field_is_refused_with_a_400_naming_it(
    setup: Setup, overrides: dict[str, Any], field: str
) -> None:
    store = get_store()
    other = make_team("other")
    values = dict(overrides)
    if values.get("input_uri") == OTHER_TEAM_INPUT:
        values["input_uri"] = put_inputs(other, "batch", {"a.csv": "1\n"})
    if values.get("input_uri") == "MISSING":
        values["input_uri"] = store.uri("teams/lab/nothing-here")
    if values.get("output_path") == INSIDE_INPUT:
        values["output_path"] = setup.input_uri + "/predictions"
    response = setup.api.post(setup.body(**values))
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["field"] == field, error
    assert error["message"].startswith(field.split(".")[0]), error
    assert not Job.objects.filter(name=values.get("name", "score-1")).exists()
    assert setup.sent == []


def test_unset_batch_settings_are_left_to_the_container(setup: Setup) -> None:
    response = setup.api.post(setup.body(max_concurrent_transforms=0))
    assert response.status_code == 201, response.content
    settings = response.json()["transform"]
    assert settings["batch_strategy"] == ""
    assert settings["max_payload_mb"] is None
    assert settings["max_concurrent_transforms"] is None


def test_the_job_page_shows_the_transform_settings_and_its_progress(
    setup: Setup, client: Client
) -> None:
    job_id = int(setup.api.post(setup.body(batch_strategy="SingleRecord")).json()["id"])
    job_transition(
        job_id=job_id,
        status=JobStatus.IN_PROGRESS,
        secondary_status=SecondaryStatus.TRANSFORMING,
        message="Transforming input data: 3/10 records, 1/2 files",
        records_done=3,
        records_total=10,
        files_done=1,
        files_total=2,
    )
    client.force_login(setup.author)
    page = client.get(f"/jobs/{job_id}/").content.decode()
    assert 'data-progress aria-labelledby="progress-heading"' in page
    assert '<progress class="progress-bar" data-progress-bar max="10" value="3">' in page
    assert "<strong data-records-done>3</strong> / <span data-records-total>10</span>" in page
    assert "<span data-files-done>1</span> / <span data-files-total>2</span> files" in page
    assert "data-transform-config" in page
    assert "<code>summer/1</code>" in page
    assert "<code>SingleRecord</code>" in page
    assert "Transform time" in page
    # The live status events carry the progress the page script draws.
    assert job_status_payload(Job.objects.get(pk=job_id))["progress"] == {
        "records_done": 3,
        "records_total": 10,
        "files_done": 1,
        "files_total": 2,
    }
