"""The real `mlflow` client, pointed at a live Studiolo (uvicorn serving studio.asgi), does
what a training script does; the same data is then read back through the native API."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import mlflow  # the test extra `mlflow-skinny`: missing, the suite fails rather than skips
import pytest
from django.contrib.auth.models import User
from mlflow.entities import Metric, Param, RunTag
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from studio.accounts.models import Team
from tests.factories import make_team, make_token, make_user

T0 = 1_700_000_000_000


@pytest.fixture
def mlflow_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A quiet, fail-fast client: no telemetry, no retries, and no run left active."""
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    monkeypatch.setenv("DO_NOT_TRACK", "true")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")
    # The fluent API remembers the last `set_experiment` in a module global and in the
    # environment; setting then deleting makes monkeypatch remove it again afterwards.
    monkeypatch.setattr(mlflow.tracking.fluent, "_active_experiment_id", None)
    for name in ("MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME", "MLFLOW_RUN_ID"):
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)
    yield
    while mlflow.active_run() is not None:
        mlflow.end_run()
    mlflow.set_tracking_uri("")


@pytest.fixture
def member(asgi_server: str) -> tuple[Team, User, str]:
    team = make_team()
    user = make_user(team, role="scientist")
    return team, user, make_token(user)


def native(base: str, token: str, path: str) -> Any:
    response = httpx.get(f"{base}/api/v1{path}", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.text
    return response.json()


def test_a_training_script_logs_through_the_mlflow_client(
    asgi_server: str,
    member: tuple[Team, User, str],
    mlflow_env: None,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    team, user, token = member
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", token)
    tracking_uri = f"{asgi_server}/mlflow/{team.slug}"
    mlflow.set_tracking_uri(tracking_uri)
    client = MlflowClient(tracking_uri=tracking_uri)

    experiment = mlflow.set_experiment("churn")
    assert experiment.name == "churn"
    assert experiment.lifecycle_stage == "active"
    assert client.get_experiment_by_name("churn").experiment_id == experiment.experiment_id
    model_file = tmp_path / "model.txt"
    model_file.write_text("weights")
    (tmp_path / "plots").mkdir()
    (tmp_path / "plots" / "curve.csv").write_text("step,loss\n0,0.9\n")

    with mlflow.start_run(run_name="baseline", tags={"stage": "dev"}) as active:
        run_id = active.info.run_id
        assert len(run_id) == 32
        mlflow.log_param("lr", 0.1)
        mlflow.log_params({"depth": 3, "model": "cnn"})
        mlflow.log_param("lr", 0.1)  # the same value again is fine
        mlflow.log_metric("loss", 0.9, step=0)
        mlflow.log_metrics({"loss": 0.5, "acc": 0.8}, step=1)
        mlflow.log_metric("diverged", float("nan"))
        mlflow.log_metric("blowup", float("inf"))
        client.log_batch(
            run_id,
            metrics=[Metric("curve", float(i % 7), T0 + i, i) for i in range(1000)],
        )
        client.log_batch(run_id, params=[Param("optimizer", "adam")], tags=[RunTag("owner", "ml")])
        mlflow.set_tag("checked", "yes")
        mlflow.log_artifact(str(model_file))
        mlflow.log_artifact(str(tmp_path / "plots" / "curve.csv"), artifact_path="plots")
        with pytest.raises(MlflowException) as changed:
            mlflow.log_param("lr", 0.2)
        assert changed.value.error_code == "INVALID_PARAMETER_VALUE"
        assert "'lr'" in changed.value.message

    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.info.end_time is not None
    assert run.info.run_name == "baseline"
    assert (
        run.info.artifact_uri == f"mlflow-artifacts:/{experiment.experiment_id}/{run_id}/artifacts"
    )
    assert run.data.params == {
        "lr": "0.1",
        "depth": "3",
        "model": "cnn",
        "optimizer": "adam",
    }
    assert run.data.metrics["loss"] == 0.5
    assert run.data.metrics["acc"] == 0.8
    assert math.isnan(run.data.metrics["diverged"])
    assert run.data.metrics["blowup"] == math.inf
    assert run.data.metrics["curve"] == float(999 % 7)
    assert run.data.tags["stage"] == "dev"
    assert run.data.tags["owner"] == "ml"
    assert run.data.tags["mlflow.runName"] == "baseline"

    history = client.get_metric_history(run_id, "curve")
    assert [(p.step, p.value, p.timestamp) for p in history] == [
        (i, float(i % 7), T0 + i) for i in range(1000)
    ]
    assert [p.value for p in client.get_metric_history(run_id, "loss")] == [0.9, 0.5]

    other = client.create_run(experiment.experiment_id, run_name="wider")
    client.log_batch(
        other.info.run_id, metrics=[Metric("acc", 0.95, T0, 0)], params=[Param("model", "cnn")]
    )
    client.set_terminated(other.info.run_id, "FAILED")
    found = client.search_runs(
        [experiment.experiment_id],
        "params.model = 'cnn' and metrics.acc > 0.5",
        order_by=["metrics.acc DESC"],
    )
    assert [r.info.run_id for r in found] == [other.info.run_id, run_id]
    finished = client.search_runs(
        [experiment.experiment_id], "attributes.status = 'FINISHED' and tags.stage != 'prod'"
    )
    assert [r.info.run_id for r in finished] == [run_id]
    assert [e.name for e in client.search_experiments()] == ["churn"]

    listed = {f.path: f.is_dir for f in client.list_artifacts(run_id)}
    assert listed == {"model.txt": False, "plots": True}
    assert [f.path for f in client.list_artifacts(run_id, "plots")] == ["plots/curve.csv"]
    downloaded = mlflow.artifacts.download_artifacts(
        run_id=run_id, artifact_path="model.txt", dst_path=str(tmp_path / "down")
    )
    assert Path(downloaded).read_text() == "weights"
    folder = mlflow.artifacts.download_artifacts(
        run_id=run_id, artifact_path="plots", dst_path=str(tmp_path / "down2")
    )
    assert (Path(folder) / "curve.csv").read_text().startswith("step,loss")

    # The same run through Studiolo's own API.
    body = native(asgi_server, token, f"/runs/{run_id}")
    assert body["status"] == "FINISHED"
    assert body["team"] == team.slug
    assert body["user"] == user.username
    assert body["experiment"] == "churn"
    assert body["params"]["model"] == "cnn"
    assert body["metrics"]["loss"]["value"] == 0.5
    assert body["metrics"]["diverged"]["value"] == "NaN"
    assert body["metrics"]["blowup"]["value"] == "Infinity"
    assert body["metrics"]["curve"]["count"] == 1000
    sampled = native(asgi_server, token, f"/runs/{run_id}/metric-history?key=curve&max_points=100")
    assert sampled["sampled"]
    assert len(sampled["points"]) <= 100
    files = native(asgi_server, token, f"/runs/{run_id}/artifacts")["files"]
    assert {f["path"] for f in files} == {"model.txt", "plots"}


def test_logging_to_a_finished_run_is_a_clear_error(
    asgi_server: str,
    member: tuple[Team, User, str],
    mlflow_env: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    team, _, token = member
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", token)
    client = MlflowClient(tracking_uri=f"{asgi_server}/mlflow/{team.slug}")
    experiment_id = client.create_experiment("x")
    run = client.create_run(experiment_id)
    client.set_terminated(run.info.run_id)
    with pytest.raises(MlflowException) as refused:
        client.log_metric(run.info.run_id, "loss", 1.0)
    assert refused.value.error_code == "INVALID_PARAMETER_VALUE"
    assert "FINISHED" in refused.value.message
    assert refused.value.get_http_status_code() == 400


def test_another_teams_run_does_not_exist_for_the_client(
    asgi_server: str,
    member: tuple[Team, User, str],
    mlflow_env: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    team, _, token = member
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", token)
    client = MlflowClient(tracking_uri=f"{asgi_server}/mlflow/{team.slug}")
    run = client.create_run(client.create_experiment("mine"))
    stranger_team = make_team()
    stranger = make_user(stranger_team, role="scientist")
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", make_token(stranger))
    theirs = MlflowClient(tracking_uri=asgi_server)  # their only team: no prefix needed
    with pytest.raises(MlflowException) as hidden:
        theirs.get_run(run.info.run_id)
    assert hidden.value.error_code == "RESOURCE_DOES_NOT_EXIST"
    with pytest.raises(MlflowException) as hidden:
        theirs.log_metric(run.info.run_id, "loss", 1.0)
    assert hidden.value.error_code == "RESOURCE_DOES_NOT_EXIST"


def test_a_run_without_set_experiment_goes_to_the_teams_default_experiment(
    asgi_server: str,
    member: tuple[Team, User, str],
    mlflow_env: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _, _, token = member
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", token)
    mlflow.set_tracking_uri(asgi_server)
    with mlflow.start_run() as active:
        mlflow.log_metric("x", 1.0)
    client = MlflowClient(tracking_uri=asgi_server)
    experiment = client.get_experiment(active.info.experiment_id)
    assert experiment.name == "Default"
    assert client.get_run(active.info.run_id).data.metrics == {"x": 1.0}


def test_a_request_without_a_token_is_unauthenticated(
    asgi_server: str, mlflow_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_TOKEN", raising=False)
    with pytest.raises(MlflowException) as refused:
        MlflowClient(tracking_uri=asgi_server).search_experiments()
    assert refused.value.error_code == "UNAUTHENTICATED"
