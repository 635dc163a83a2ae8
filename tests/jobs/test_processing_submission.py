"""Submitting processing jobs (CreateProcessingJob): what is stored, and every bad input of
issue #15 refused with a 400 naming the field, before anything starts. Nothing runs here:
the hand-off to the worker queue is recorded only."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from jobs.models import Job, JobKind, JobStatus
from studio.artifacts import get_store
from studio.audit.models import AuditEvent
from tests.factories import make_team, make_token, make_user
from tests.jobs.processing_support import pretend_docker

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _engine(monkeypatch: pytest.MonkeyPatch, settings: Any) -> None:
    settings.RUNTIME = "process"  # nothing is started
    pretend_docker(monkeypatch)  # the submission's questions answered as Docker would


class Api:
    def __init__(self, client: Client) -> None:
        self.client = client
        self.team = make_team("lab")
        self.auth = {"HTTP_AUTHORIZATION": f"Bearer {make_token(make_user(self.team))}"}
        store = get_store()
        store.put("teams/lab/raw/a.csv", b"1,2\n")
        store.put("teams/lab/raw/b.csv", b"3,4\n")
        store.put("teams/lab/code/preprocess.py", b"print('hi')\n")
        self.raw = store.uri("teams/lab/raw")
        self.code = store.uri("teams/lab/code/preprocess.py")

    def body(self, **overrides: Any) -> dict[str, Any]:
        body: dict[str, Any] = {
            "name": "prep-1",
            "instance_type": "ml.local.small",
            "framework": "sklearn",
            "code": self.code,
            "inputs": [{"name": "raw", "uri": self.raw, "local_path": "/opt/ml/processing/input"}],
            "outputs": [{"name": "train", "local_path": "/opt/ml/processing/train"}],
            "container_arguments": ["--split=0.2"],
        }
        body.update(overrides)
        return body

    def post(self, body: dict[str, Any]) -> Any:
        return self.client.post(
            "/api/v1/processing-jobs", body, content_type="application/json", **self.auth
        )

    def refused(self, body: dict[str, Any]) -> dict[str, Any]:
        response = self.post(body)
        assert response.status_code == 400, response.content
        assert not Job.objects.exists()
        error: dict[str, Any] = response.json()["error"]
        return error


@pytest.fixture
def api(client: Client, monkeypatch: pytest.MonkeyPatch) -> Api:
    monkeypatch.setattr("jobs.tasks.run_job.apply_async", lambda *a, **k: None)
    return Api(client)


def test_a_script_processor_runs_its_script_from_the_code_input_with_the_frameworks_command(
    api: Api,
) -> None:
    response = api.post(api.body())
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["kind"], body["status"]) == (JobKind.PROCESSING, JobStatus.PENDING)
    assert body["image"] == "studiolo/sklearn:latest"
    assert body["container_entrypoint"] == [
        "python3",
        "/opt/ml/processing/input/code/preprocess.py",
    ]
    assert body["container_arguments"] == ["--split=0.2"]
    inputs = {item["name"]: item for item in body["processing"]["inputs"]}
    assert inputs["raw"] == {
        "name": "raw",
        "uri": api.raw,
        "local_path": "/opt/ml/processing/input",
        "distribution": "FullyReplicated",
        "input_mode": "File",
    }
    assert inputs["code"]["local_path"] == "/opt/ml/processing/input/code"
    assert inputs["code"]["uri"] == api.code
    [output] = body["processing"]["outputs"]
    assert output == {
        "name": "train",
        "uri": get_store().uri("teams/lab/processing/prep-1/output/train"),
        "local_path": "/opt/ml/processing/train",
        "upload_mode": "EndOfJob",
    }
    assert AuditEvent.objects.filter(action="job.created").count() == 1


def test_an_image_runs_its_own_program_with_defaulted_paths(api: Api) -> None:
    store = get_store()
    body = api.body(
        framework="",
        code="",
        image="studiolo/python-base:bookworm",
        container_arguments=None,
        inputs=[{"name": "raw", "uri": api.raw, "distribution": "ShardedByS3Key"}],
        outputs=[
            {
                "name": "out",
                "uri": store.uri("teams/lab/results") + "/",
                "upload_mode": "Continuous",
            }
        ],
    )
    response = api.post(body)
    assert response.status_code == 201, response.content
    job = response.json()
    assert job["container_entrypoint"] is None
    assert job["container_arguments"] is None
    [raw] = job["processing"]["inputs"]
    assert (raw["local_path"], raw["distribution"]) == (
        "/opt/ml/processing/input/raw",
        "ShardedByS3Key",
    )
    [out] = job["processing"]["outputs"]
    assert out["local_path"] == "/opt/ml/processing/output/out"
    assert out["uri"] == store.uri("teams/lab/results")
    assert out["upload_mode"] == "Continuous"


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("/opt/ml/input/data", "inputs.raw.local_path"),
        ("/tmp/raw", "inputs.raw.local_path"),  # noqa: S108 (a path in a request, not a file)
        ("/opt/ml/processing/../model", "inputs.raw.local_path"),
        ("/opt/ml/processing/", "inputs.raw.local_path"),
        ("/opt/ml/processing/raw/", "inputs.raw.local_path"),
        ("/opt/ml/processing/" + "x" * 240, "inputs.raw.local_path"),
    ],
)
def test_an_input_local_path_outside_opt_ml_processing_is_refused(
    api: Api, path: str, field: str
) -> None:
    error = api.refused(api.body(inputs=[{"name": "raw", "uri": api.raw, "local_path": path}]))
    assert error["field"] == field


def test_an_output_local_path_outside_opt_ml_processing_is_refused(api: Api) -> None:
    error = api.refused(api.body(outputs=[{"name": "train", "local_path": "/opt/ml/model"}]))
    assert error["field"] == "outputs.train.local_path"


def test_two_inputs_with_the_same_name_are_refused(api: Api) -> None:
    inputs = [
        {"name": "raw", "uri": api.raw, "local_path": "/opt/ml/processing/a"},
        {"name": "raw", "uri": api.raw, "local_path": "/opt/ml/processing/b"},
    ]
    assert api.refused(api.body(inputs=inputs))["field"] == "inputs.raw.name"


def test_two_inputs_with_the_same_local_path_are_refused(api: Api) -> None:
    inputs = [
        {"name": "one", "uri": api.raw, "local_path": "/opt/ml/processing/a"},
        {"name": "two", "uri": api.raw, "local_path": "/opt/ml/processing/a"},
    ]
    error = api.refused(api.body(inputs=inputs))
    assert error["field"] == "inputs.two.local_path"
    assert "inputs.one" in error["message"]


def test_an_input_and_an_output_with_the_same_local_path_are_refused(api: Api) -> None:
    outputs = [{"name": "train", "local_path": "/opt/ml/processing/input"}]
    assert api.refused(api.body(outputs=outputs))["field"] == "outputs.train.local_path"


def test_an_output_inside_another_output_is_refused(api: Api) -> None:
    outputs = [
        {"name": "all", "local_path": "/opt/ml/processing/output"},
        {"name": "train", "local_path": "/opt/ml/processing/output/train"},
    ]
    assert api.refused(api.body(outputs=outputs))["field"] == "outputs.train.local_path"


def test_an_input_inside_an_output_is_refused_but_inputs_may_nest(api: Api) -> None:
    outputs = [{"name": "train", "local_path": "/opt/ml/processing/work"}]
    inputs = [{"name": "raw", "uri": api.raw, "local_path": "/opt/ml/processing/work/raw"}]
    error = api.refused(api.body(inputs=inputs, outputs=outputs))
    assert error["field"] == "inputs.raw.local_path"
    # The SDK's own layout: the script's input/code inside input/ (the default body).
    assert api.post(api.body()).status_code == 201


def test_an_unknown_image_is_refused_naming_it(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    pretend_docker(monkeypatch, "nobody/nothing:1")
    body = api.body(framework="", code="", image="nobody/nothing:1")
    error = api.refused(body)
    assert error["field"] == "image"
    assert "nobody/nothing:1" in error["message"]


def test_the_process_runtime_refuses_processing_jobs_saying_why(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.undo()  # the settings' process runtime, as it is
    monkeypatch.setattr("jobs.tasks.run_job.apply_async", lambda *a, **k: None)
    error = api.refused(api.body())
    assert error["field"] == "kind"
    assert "Docker runtime" in error["message"]


def test_an_unknown_framework_is_refused_naming_it(api: Api) -> None:
    error = api.refused(api.body(framework="cobol"))
    assert error["field"] == "framework"
    assert "cobol" in error["message"]


def test_an_input_uri_that_does_not_exist_is_refused_naming_it(api: Api) -> None:
    missing = get_store().uri("teams/lab/nothing-here")
    error = api.refused(api.body(inputs=[{"name": "raw", "uri": missing}]))
    assert error["field"] == "inputs.raw.uri"
    assert missing in error["message"]


def test_an_input_of_another_team_does_not_exist_for_this_one(api: Api) -> None:
    make_team("other")
    get_store().put("teams/other/secret.csv", b"x")
    other = get_store().uri("teams/other/secret.csv")
    assert api.refused(api.body(inputs=[{"name": "raw", "uri": other}]))["field"] == (
        "inputs.raw.uri"
    )


def test_a_script_that_does_not_exist_is_refused(api: Api) -> None:
    error = api.refused(api.body(code=get_store().uri("teams/lab/code/missing.py")))
    assert error["field"] == "code"


def test_a_framework_without_a_script_is_refused(api: Api) -> None:
    assert api.refused(api.body(code=""))["field"] == "code"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"inputs": [{"name": f"i{n}", "uri": "x"} for n in range(11)]}, "inputs"),
        ({"outputs": [{"name": f"o{n}"} for n in range(11)]}, "outputs"),
        (
            {"inputs": [{"name": "raw", "uri": "x", "distribution": "Random"}]},
            "inputs.raw.distribution",
        ),
        ({"inputs": [{"name": "raw", "uri": "x", "input_mode": "Pipe"}]}, "inputs.raw.input_mode"),
        ({"outputs": [{"name": "o", "upload_mode": "Never"}]}, "outputs.o.upload_mode"),
        ({"inputs": [{"name": "code", "uri": "x"}]}, "inputs.code.name"),
        ({"inputs": [{"name": "bad name", "uri": "x"}]}, "inputs.bad name.name"),
        ({"environment": {"A": "x" * 257}}, "environment.A"),
        ({"image": "studiolo/sklearn:latest"}, "image"),
    ],
)
def test_requests_beyond_sagemakers_limits_are_refused(
    api: Api, change: dict[str, Any], field: str
) -> None:
    assert api.refused(api.body(**change))["field"] == field


def test_an_output_uri_outside_the_team_is_refused(api: Api) -> None:
    outputs = [{"name": "train", "uri": get_store().uri("teams/other/x")}]
    assert api.refused(api.body(outputs=outputs))["field"] == "outputs.train.uri"
