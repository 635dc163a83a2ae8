"""Bad input to job submission: a 400 naming the field, before anything starts."""

from __future__ import annotations

import io
import tarfile
from typing import Any

import pytest
from django.test import Client

from jobs.models import Job
from studio.artifacts import get_store
from studio.audit.models import AuditEvent
from tests.factories import make_team, make_token, make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def team_client(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> tuple[Client, dict[str, str], str]:
    sent: list[Any] = []
    monkeypatch.setattr("jobs.tasks.run_job.apply_async", lambda *a, **k: sent.append((a, k)))
    team = make_team("lab")
    user = make_user(team, role="scientist")
    return client, {"HTTP_AUTHORIZATION": f"Bearer {make_token(user)}"}, team.slug


def source_archive(files: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def valid_request(**overrides: Any) -> dict[str, Any]:
    store = get_store()
    store.put("teams/lab/data/train.csv", b"1,2\n3,4\n")
    store.put("teams/lab/code/sourcedir.tar.gz", source_archive({"train.py": "print('hi')\n"}))
    body = {
        "name": "job-1",
        "framework": "sklearn",
        "entry_point": "train.py",
        "source_uri": store.uri("teams/lab/code/sourcedir.tar.gz"),
        "instance_type": "ml.local.small",
        "hyperparameters": {"epochs": "3"},
        "input_channels": [{"name": "train", "uri": store.uri("teams/lab/data")}],
        "metric_definitions": [{"name": "loss", "regex": "loss=([0-9.]+)"}],
    }
    body.update(overrides)
    return body


def post(team_client: tuple[Client, dict[str, str], str], body: dict[str, Any]) -> Any:
    client, auth, _ = team_client
    return client.post("/api/v1/jobs", body, content_type="application/json", **auth)


@pytest.fixture(autouse=True)
def _process_runtime(settings: Any) -> None:
    # Validation does not depend on the runtime except for image checks (tested apart);
    # get_runtime() follows the setting.
    settings.RUNTIME = "process"


def test_valid_request_creates_a_pending_job_with_its_run(team_client: Any) -> None:
    response = post(team_client, valid_request())
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["status"] == "Pending"
    assert body["run_id"] is not None
    assert body["output_path"].endswith("teams/lab/jobs")
    job = Job.objects.get(pk=body["id"])
    assert [t.to_status for t in job.transitions.all()] == ["Pending"]


@pytest.mark.parametrize(
    ("overrides", "field", "text"),
    [
        ({"instance_type": "ml.p4d.24xlarge"}, "instance_type", "unknown"),
        ({"hyperparameters": {"epochs": 3}}, "hyperparameters.epochs", "strings"),
        ({"hyperparameters": ["epochs"]}, "hyperparameters", ""),
        (
            {"input_channels": [{"name": "train", "uri": "file:///etc/passwd"}]},
            "input_channels.train",
            "",
        ),
        (
            {"input_channels": [{"name": "train", "uri": "s3://elsewhere/data"}]},
            "input_channels.train",
            "",
        ),
        ({"entry_point": "missing.py"}, "entry_point", "not in the source"),
        ({"framework": "tensorflow"}, "framework", "unknown"),
        ({"name": "bad_name!"}, "name", ""),
        ({"max_runtime_seconds": 0}, "max_runtime_seconds", ""),
        (
            {"metric_definitions": [{"name": "loss", "regex": "loss=[0-9"}]},
            "metric_definitions.loss",
            "regex",
        ),
        (
            {"metric_definitions": [{"name": "loss", "regex": "loss"}]},
            "metric_definitions.loss",
            "capture group",
        ),
        ({"environment": {"1BAD": "x"}}, "environment", ""),
        ({"framework": "", "image": ""}, "image", ""),
    ],
)
def test_bad_input_is_a_400_naming_the_field(
    team_client: Any, overrides: dict[str, Any], field: str, text: str
) -> None:
    response = post(team_client, valid_request(**overrides))
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["field"] == field
    assert text in error["message"]
    assert not Job.objects.exists()


def test_channel_that_does_not_exist_is_a_400(team_client: Any) -> None:
    uri = get_store().uri("teams/lab/nothing-here")
    response = post(team_client, valid_request(input_channels=[{"name": "train", "uri": uri}]))
    assert response.status_code == 400
    assert response.json()["error"]["field"] == "input_channels.train"
    assert "does not exist" in response.json()["error"]["message"]


def test_channel_of_another_team_looks_missing(team_client: Any) -> None:
    get_store().put("teams/other/secret.csv", b"x")
    uri = get_store().uri("teams/other/secret.csv")
    response = post(team_client, valid_request(input_channels=[{"name": "train", "uri": uri}]))
    assert response.status_code == 400
    assert "does not exist" in response.json()["error"]["message"]


def test_a_name_longer_than_63_is_a_400_whatever_its_hyphens(team_client: Any) -> None:
    # SageMaker's pattern alone lets hyphen runs through; the column holds 63 characters.
    response = post(team_client, valid_request(name="a" + "-" * 70 + "b"))
    assert response.status_code == 400
    assert response.json()["error"]["field"] == "name"
    assert not Job.objects.exists()


def test_a_name_already_used_is_a_400(team_client: Any) -> None:
    assert post(team_client, valid_request()).status_code == 201
    response = post(team_client, valid_request())
    assert response.status_code == 400
    assert response.json()["error"]["field"] == "name"
    assert Job.objects.count() == 1


def test_viewer_cannot_submit(client: Client) -> None:
    team = make_team("lab")
    viewer = make_user(team, role="viewer")
    response = client.post(
        "/api/v1/jobs",
        valid_request(),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {make_token(viewer)}",
    )
    assert response.status_code == 403
    assert not Job.objects.exists()


def test_other_teams_jobs_are_not_found(team_client: Any) -> None:
    created = post(team_client, valid_request()).json()
    client = team_client[0]
    outsider = make_user(make_team("else"))
    auth = {"HTTP_AUTHORIZATION": f"Bearer {make_token(outsider)}"}
    assert client.get(f"/api/v1/jobs/{created['id']}", **auth).status_code == 404
    assert client.post(f"/api/v1/jobs/{created['id']}/stop", **auth).status_code == 404
    assert client.get("/api/v1/jobs", **auth).json()["results"] == []


def test_stopping_a_pending_job_stops_it_at_once(team_client: Any) -> None:
    client, auth, _ = team_client
    created = post(team_client, valid_request()).json()
    response = client.post(f"/api/v1/jobs/{created['id']}/stop", **auth)
    assert response.status_code == 200
    assert response.json()["status"] == "Stopped"
    again = client.post(f"/api/v1/jobs/{created['id']}/stop", **auth)
    assert again.status_code == 409


# --- CheckpointConfig ---------------------------------------------------------------------


def test_a_checkpoint_uri_is_stored_with_the_default_local_path(team_client: Any) -> None:
    uri = get_store().uri("teams/lab/checkpoints/resnet")
    response = post(team_client, valid_request(checkpoint_config={"s3_uri": uri + "/"}))
    assert response.status_code == 201, response.content
    expected = {"uri": uri, "local_path": "/opt/ml/checkpoints"}
    assert response.json()["checkpoint"] == expected
    job = Job.objects.get()
    assert job.checkpoint == expected
    audit = AuditEvent.objects.get(action="job.created")
    assert audit.details["checkpoint_uri"] == uri


def test_uri_and_a_local_path_under_opt_ml_are_taken(team_client: Any) -> None:
    uri = get_store().uri("teams/lab/ckpt")
    response = post(
        team_client,
        valid_request(checkpoint_config={"uri": uri, "local_path": "/opt/ml/state/run-1/"}),
    )
    assert response.status_code == 201, response.content
    assert Job.objects.get().checkpoint == {"uri": uri, "local_path": "/opt/ml/state/run-1"}


def test_a_job_without_checkpoints_has_an_empty_config(team_client: Any) -> None:
    response = post(team_client, valid_request())
    assert response.status_code == 201
    assert response.json()["checkpoint"] == {}
    response = post(team_client, valid_request(name="job-2", checkpoint_config=None))
    assert response.status_code == 201
    assert Job.objects.get(name="job-2").checkpoint == {}


@pytest.mark.parametrize(
    ("config", "field", "text"),
    [
        ({"local_path": "/opt/ml/checkpoints"}, "checkpoint_config.s3_uri", "required"),
        ({"s3_uri": "file:///etc"}, "checkpoint_config.s3_uri", ""),
        ({"s3_uri": "s3://elsewhere/ckpt"}, "checkpoint_config.s3_uri", ""),
        ({"s3_uri": "not a uri at all"}, "checkpoint_config.s3_uri", ""),
        ({"s3_uri": "@team-root"}, "checkpoint_config.s3_uri", "not the area itself"),
        ({"s3_uri": "@file"}, "checkpoint_config.s3_uri", "is a file"),
        ({"s3_uri": "@ok", "local_path": "checkpoints"}, "checkpoint_config.local_path", ""),
        ({"s3_uri": "@ok", "local_path": "/tmp/ckpt"}, "checkpoint_config.local_path", ""),
        ({"s3_uri": "@ok", "local_path": "/opt/ml"}, "checkpoint_config.local_path", ""),
        ({"s3_uri": "@ok", "local_path": "/opt/ml/"}, "checkpoint_config.local_path", ""),
        (
            {"s3_uri": "@ok", "local_path": "/opt/ml/checkpoints/../input"},
            "checkpoint_config.local_path",
            "",
        ),
        ({"s3_uri": "@ok", "local_path": "/opt/ml/model"}, "checkpoint_config.local_path", ""),
        (
            {"s3_uri": "@ok", "local_path": "/opt/ml/input/data/ckpt"},
            "checkpoint_config.local_path",
            "",
        ),
        ({"s3_uri": "@ok", "local_path": "/opt/ml/output"}, "checkpoint_config.local_path", ""),
        ({"s3_uri": "@ok", "local_path": "/opt/ml/code/x"}, "checkpoint_config.local_path", ""),
        ({"s3_uri": "@ok", "local_path": "//opt/ml/ckpt"}, "checkpoint_config.local_path", ""),
    ],
)
def test_bad_checkpoint_config_is_a_400_naming_the_field(
    team_client: Any, config: dict[str, str], field: str, text: str
) -> None:
    store = get_store()
    store.put("teams/lab/checkpoints/a-file.pt", b"x")
    named = {
        "@ok": store.uri("teams/lab/checkpoints/run"),
        "@team-root": store.uri("teams/lab"),
        "@file": store.uri("teams/lab/checkpoints/a-file.pt"),
    }
    config = {key: named.get(value, value) for key, value in config.items()}
    response = post(team_client, valid_request(checkpoint_config=config))
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["field"] == field
    assert text in error["message"]
    assert not Job.objects.exists()


def test_another_teams_checkpoints_look_missing(team_client: Any) -> None:
    store = get_store()
    store.put("teams/other/checkpoints/epoch-9.pt", b"theirs")
    uri = store.uri("teams/other/checkpoints")
    response = post(team_client, valid_request(checkpoint_config={"s3_uri": uri}))
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["field"] == "checkpoint_config.s3_uri"
    assert "does not exist" in error["message"]
    assert "theirs" not in response.content.decode()
