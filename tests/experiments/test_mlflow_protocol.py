"""MLflow's wire protocol details the client relies on: error codes and statuses, the team
rule, GET parameters, non-finite values, batch limits. (The happy path runs through the real
client in test_mlflow_client.py.)"""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client

from experiments.models import Experiment, MetricPoint, Run
from experiments.services import MetricInput, run_log_batch
from studio.accounts.models import Team
from studio.accounts.services import membership_set
from tests.factories import make_team, make_token

pytestmark = pytest.mark.django_db

T0 = 1_700_000_000_000


class Mlflow:
    def __init__(self, token: str, prefix: str = "") -> None:
        self.client = Client(HTTP_AUTHORIZATION=f"Bearer {token}")
        self.prefix = prefix

    def post(self, route: str, body: dict[str, Any]) -> Any:
        return self.client.post(
            f"{self.prefix}/api/2.0/mlflow/{route}",
            json.dumps(body),
            content_type="application/json",
        )

    def get(self, route: str, **params: Any) -> Any:
        return self.client.get(f"{self.prefix}/api/2.0/mlflow/{route}", params)


def refused(response: Any, status: int, code: str) -> str:
    assert response.status_code == status, response.content
    body = response.json()
    assert body["error_code"] == code, body
    return str(body["message"])


@pytest.fixture
def token(scientist: User) -> str:
    return make_token(scientist)


def test_an_unknown_run_is_resource_does_not_exist(token: str) -> None:
    response = Mlflow(token).get("runs/get", run_id="0" * 32)
    refused(response, 404, "RESOURCE_DOES_NOT_EXIST")


def test_an_unknown_experiment_name_is_resource_does_not_exist(token: str) -> None:
    response = Mlflow(token).get("experiments/get-by-name", experiment_name="nope")
    assert "nope" in refused(response, 404, "RESOURCE_DOES_NOT_EXIST")


def test_creating_an_existing_experiment_is_resource_already_exists(
    token: str, experiment: Experiment
) -> None:
    response = Mlflow(token).post("experiments/create", {"name": "churn"})
    refused(response, 400, "RESOURCE_ALREADY_EXISTS")


def test_a_route_studiolo_does_not_serve_is_endpoint_not_found(token: str) -> None:
    response = Mlflow(token).post("logged-models", {})
    refused(response, 404, "ENDPOINT_NOT_FOUND")


def test_a_bad_token_is_unauthenticated(db: None) -> None:
    response = Mlflow("stl_not-a-token").get("experiments/search")
    refused(response, 401, "UNAUTHENTICATED")


def test_a_member_of_several_teams_must_name_one(scientist: User, token: str) -> None:
    membership_set(team=make_team("second"), user=scientist, role="scientist")
    message = refused(
        Mlflow(token).post("experiments/create", {"name": "x"}), 400, "INVALID_PARAMETER_VALUE"
    )
    assert "/mlflow/<team>" in message
    created = Mlflow(token, prefix="/mlflow/second").post("experiments/create", {"name": "x"})
    assert created.status_code == 200, created.content
    header = Client(HTTP_AUTHORIZATION=f"Bearer {token}", HTTP_X_STUDIOLO_TEAM="second").get(
        "/api/2.0/mlflow/experiments/get-by-name", {"experiment_name": "x"}
    )
    assert header.json()["experiment"]["experiment_id"] == created.json()["experiment_id"]


def test_a_team_prefix_of_another_team_does_not_exist(token: str) -> None:
    other = make_team()
    response = Mlflow(token, prefix=f"/mlflow/{other.slug}").get("experiments/search")
    refused(response, 404, "RESOURCE_DOES_NOT_EXIST")


def test_the_team_prefix_scopes_reads_by_id(scientist: User, token: str, run: Run) -> None:
    membership_set(team=make_team("second"), user=scientist, role="scientist")
    response = Mlflow(token, prefix="/mlflow/second").get("runs/get", run_id=run.run_uuid)
    refused(response, 404, "RESOURCE_DOES_NOT_EXIST")


def test_experiments_are_represented_as_mlflow_does(
    token: str, team: Team, experiment: Experiment
) -> None:
    body = Mlflow(token).get("experiments/get", experiment_id=str(experiment.pk)).json()
    shown = body["experiment"]
    assert shown["experiment_id"] == str(experiment.pk)
    assert shown["artifact_location"] == f"mlflow-artifacts:/{experiment.pk}"
    assert shown["lifecycle_stage"] == "active"
    assert isinstance(shown["creation_time"], int)


def test_non_finite_values_travel_as_mlflow_strings(token: str, run: Run) -> None:
    client = Mlflow(token)
    for value in ("NaN", "Infinity", "-Infinity"):
        response = client.post(
            "runs/log-metric",
            {"run_id": run.run_uuid, "key": "x", "value": value, "timestamp": T0, "step": 0},
        )
        assert response.status_code == 200, response.content
    history = client.get("metrics/get-history", run_id=run.run_uuid, metric_key="x").json()
    # One step, one time: ordered by value as MLflow's server stores them (NaN as 0).
    assert [m["value"] for m in history["metrics"]] == ["-Infinity", "NaN", "Infinity"]


def test_history_pages_follow_the_clients_tokens(token: str, run: Run, scientist: User) -> None:
    run_log_batch(
        run=run, actor=scientist, metrics=[MetricInput("loss", i, i, T0) for i in range(7)]
    )
    client = Mlflow(token)
    steps, page_token = [], None
    while True:
        params: dict[str, Any] = {"run_id": run.run_uuid, "metric_key": "loss", "max_results": 3}
        if page_token:
            params["page_token"] = page_token
        body = client.get("metrics/get-history", **params).json()
        steps += [int(m["step"]) for m in body["metrics"]]
        page_token = body.get("next_page_token")
        if not page_token:
            break
    assert steps == list(range(7))


def test_log_batch_over_the_limits_writes_nothing(token: str, run: Run) -> None:
    metrics = [{"key": "x", "value": i, "timestamp": T0, "step": i} for i in range(1001)]
    response = Mlflow(token).post("runs/log-batch", {"run_id": run.run_uuid, "metrics": metrics})
    assert "at most 1000" in refused(response, 400, "INVALID_PARAMETER_VALUE")
    too_big = [{"key": f"t{i}", "value": "x" * 7999} for i in range(130)]
    response = Mlflow(token).post("runs/log-batch", {"run_id": run.run_uuid, "tags": too_big})
    assert "bytes" in refused(response, 400, "INVALID_PARAMETER_VALUE")
    assert not MetricPoint.objects.exists()


def test_a_bad_key_is_invalid_parameter_value(token: str, run: Run) -> None:
    response = Mlflow(token).post(
        "runs/log-parameter", {"run_id": run.run_uuid, "key": "../etc", "value": "1"}
    )
    assert "'../etc'" in refused(response, 400, "INVALID_PARAMETER_VALUE")


def test_search_runs_accepts_mlflows_view_type_names(
    token: str, experiment: Experiment, run: Run
) -> None:
    client = Mlflow(token)
    client.post("runs/delete", {"run_id": run.run_uuid})
    active = client.post("runs/search", {"experiment_ids": [str(experiment.pk)]}).json()
    assert active["runs"] == []
    deleted = client.post(
        "runs/search", {"experiment_ids": [str(experiment.pk)], "run_view_type": "DELETED_ONLY"}
    ).json()
    assert [r["info"]["run_id"] for r in deleted["runs"]] == [run.run_uuid]
    assert deleted["runs"][0]["info"]["lifecycle_stage"] == "deleted"


def test_setting_the_run_name_tag_renames_the_run(token: str, run: Run) -> None:
    client = Mlflow(token)
    client.post("runs/set-tag", {"run_id": run.run_uuid, "key": "mlflow.runName", "value": "v2"})
    body = client.get("runs/get", run_id=run.run_uuid).json()["run"]
    assert body["info"]["run_name"] == "v2"
    assert {"key": "mlflow.runName", "value": "v2"} in body["data"]["tags"]


def test_the_artifacts_proxy_refuses_paths_outside_a_run(token: str, run: Run) -> None:
    client = Client(HTTP_AUTHORIZATION=f"Bearer {token}")
    response = client.get(
        "/api/2.0/mlflow-artifacts/artifacts", {"path": f"{run.experiment_id}/{run.run_uuid}"}
    )
    refused(response, 404, "RESOURCE_DOES_NOT_EXIST")
    wrong_experiment = client.get(
        f"/api/2.0/mlflow-artifacts/artifacts/999/{run.run_uuid}/artifacts/x.txt"
    )
    refused(wrong_experiment, 404, "RESOURCE_DOES_NOT_EXIST")


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


def test_a_warm_caller_costs_no_query_and_a_revoked_token_ends_within_the_ttl(
    scientist: User, run: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from experiments.mlflow import calls
    from studio.accounts.models import ApiToken
    from studio.accounts.services import token_revoke

    clock = _Clock()
    monkeypatch.setattr(calls, "time", clock)
    token = make_token(scientist)
    api = Mlflow(token)
    body = {"run_id": run.run_uuid, "key": "loss", "value": 0.5, "timestamp": T0, "step": 0}
    with CaptureQueriesContext(connection) as queries:
        assert api.post("runs/log-metric", body).status_code == 200
    reads = [q["sql"].split(" FROM ")[0] for q in queries.captured_queries]
    assert any(r.startswith('SELECT "accounts_apitoken"') for r in reads), reads
    assert any(r.startswith('SELECT "accounts_team"') for r in reads), reads
    with CaptureQueriesContext(connection) as queries:
        assert api.post("runs/log-metric", {**body, "step": 1}).status_code == 200
    reads = [q["sql"].split(" FROM ")[0] for q in queries.captured_queries]
    assert not any(r.startswith('SELECT "accounts_apitoken"') for r in reads), reads
    assert not any(r.startswith('SELECT "accounts_team"') for r in reads), reads
    # The role is still read at each write (with the run: its membership row is joined), and
    # the services decide, every time.
    sqls = [q["sql"] for q in queries.captured_queries]
    assert any('"accounts_membership"."role"' in sql for sql in sqls), sqls

    token_revoke(token=ApiToken.objects.get(user=scientist), actor=scientist)
    clock.now += calls.CALLER_TTL_SECONDS / 2
    assert api.post("runs/log-metric", {**body, "step": 2}).status_code == 200
    clock.now += calls.CALLER_TTL_SECONDS
    refused(api.post("runs/log-metric", {**body, "step": 3}), 401, "UNAUTHENTICATED")


def test_a_member_removed_from_the_team_is_refused_at_once(
    scientist: User, team: Team, run: Run
) -> None:
    from studio.accounts.models import Membership

    api = Mlflow(make_token(scientist))
    body = {"run_id": run.run_uuid, "key": "loss", "value": 0.5, "timestamp": T0, "step": 0}
    assert api.post("runs/log-metric", body).status_code == 200
    Membership.objects.filter(team=team, user=scientist).delete()
    response = api.post("runs/log-metric", {**body, "step": 1})
    assert response.status_code in (403, 404), response.content
    assert MetricPoint.objects.filter(run_id=run.pk, key="loss").count() == 1


def test_a_role_change_applies_at_the_next_call_with_a_warm_caller(
    scientist: User, team: Team, run: Run
) -> None:
    """The role comes with the run (its membership row joined) at every call: a member made
    a viewer can no longer log, and one removed no longer sees the run, even while the API
    keeps their token and team (CALLER_TTL_SECONDS)."""
    from studio.accounts.services import membership_remove

    api = Mlflow(make_token(scientist))
    body = {"run_id": run.run_uuid, "key": "loss", "value": 0.5, "timestamp": T0, "step": 0}
    assert api.post("runs/log-metric", body).status_code == 200
    membership_set(team=team, user=scientist, role="viewer")
    refused(api.post("runs/log-metric", {**body, "step": 1}), 403, "PERMISSION_DENIED")
    assert api.get("runs/get", run_id=run.run_uuid).status_code == 200  # viewers read
    membership_remove(team=team, user=scientist)
    refused(api.post("runs/log-metric", {**body, "step": 2}), 404, "RESOURCE_DOES_NOT_EXIST")
    assert MetricPoint.objects.filter(run=run).count() == 1
