"""CheckpointConfig at submission: stored as {uri, local_path}, shown by the API, and bad
input answered with a 400 naming the field."""

from __future__ import annotations

from typing import Any

import pytest

from jobs.models import Job
from studio.artifacts import get_store
from studio.audit.models import AuditEvent
from tests.jobs.test_submission import (  # noqa: F401 - fixtures
    _process_runtime,
    post,
    team_client,
    valid_request,
)

pytestmark = pytest.mark.django_db


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
