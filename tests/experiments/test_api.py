"""The native tracking API under /api/v1/: experiments, runs, batches, search, history,
artifacts. Refusals are 4xx naming the problem, with nothing written."""

from __future__ import annotations

import json
import math

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test.utils import CaptureQueriesContext

from experiments.models import Experiment, MetricPoint, Run, RunStatus
from experiments.services import MetricInput, run_create, run_log_batch
from studio.accounts.models import Team
from studio.audit.models import AuditEvent
from tests.experiments.conftest import api, error

pytestmark = pytest.mark.django_db

V1 = "/api/v1"
T0 = 1_700_000_000_000


# --- experiments ----------------------------------------------------------------------------


def test_create_list_rename_delete_and_restore_an_experiment(team: Team, scientist: User) -> None:
    client = api(scientist)
    created = client.post(
        f"{V1}/experiments",
        {"name": "churn", "description": "why customers leave", "tags": {"area": "retention"}},
        format="json",
    )
    assert created.status_code == 201, created.content
    body = created.json()
    assert (body["team"], body["name"], body["lifecycle"]) == (team.slug, "churn", "active")
    assert body["tags"] == {"area": "retention"}
    experiment_id = body["id"]
    listed = client.get(f"{V1}/experiments").json()["results"]
    assert [e["name"] for e in listed] == ["churn"]
    renamed = client.patch(
        f"{V1}/experiments/{experiment_id}", {"name": "churn-2"}, format="json"
    ).json()
    assert renamed["name"] == "churn-2"
    assert client.delete(f"{V1}/experiments/{experiment_id}").json()["lifecycle"] == "deleted"
    assert client.get(f"{V1}/experiments").json()["results"] == []
    deleted = client.get(f"{V1}/experiments?view=DELETED_ONLY").json()["results"]
    assert [e["name"] for e in deleted] == ["churn-2"]
    restored = client.post(f"{V1}/experiments/{experiment_id}/restore").json()
    assert restored["lifecycle"] == "active"
    assert {
        "experiment.created",
        "experiment.updated",
        "experiment.deleted",
        "experiment.restored",
    } <= set(AuditEvent.objects.values_list("action", flat=True))


def test_a_duplicate_experiment_name_is_a_conflict(experiment: Experiment, scientist: User) -> None:
    response = api(scientist).post(f"{V1}/experiments", {"name": "churn"}, format="json")
    assert error(response, 409)["field"] == "name"


def test_another_teams_experiment_and_run_are_not_found(
    experiment: Experiment, run: Run, outsider: User
) -> None:
    client = api(outsider)
    assert client.get(f"{V1}/experiments/{experiment.pk}").status_code == 404
    assert client.get(f"{V1}/runs/{run.run_uuid}").status_code == 404
    response = client.post(
        f"{V1}/runs/{run.run_uuid}/metrics",
        {"metrics": [{"key": "loss", "value": 1}]},
        format="json",
    )
    assert response.status_code == 404
    assert not MetricPoint.objects.exists()


def test_anonymous_requests_are_refused(run: Run) -> None:
    assert api(None).get(f"{V1}/runs/{run.run_uuid}").status_code in (401, 403)


# --- runs -----------------------------------------------------------------------------------


def test_a_run_is_created_logged_to_and_ended(experiment: Experiment, scientist: User) -> None:
    client = api(scientist)
    created = client.post(
        f"{V1}/runs",
        {"experiment_id": experiment.pk, "name": "baseline", "tags": {"stage": "dev"}},
        format="json",
    )
    assert created.status_code == 201, created.content
    run_id = created.json()["run_id"]
    assert created.json()["status"] == "RUNNING"
    assert created.json()["source"] == "external"
    batch = client.post(
        f"{V1}/runs/{run_id}/batch",
        {
            "metrics": [
                {"key": "loss", "value": 0.5, "step": 1, "timestamp": T0},
                {"key": "loss", "value": "NaN", "step": 2, "timestamp": T0 + 1},
                {"key": "gain", "value": "-Infinity"},
            ],
            "params": {"lr": 0.1, "model": "cnn"},
            "tags": [{"key": "owner", "value": "ml"}],
        },
        format="json",
    )
    assert batch.json() == {"metrics": 3, "params": 2, "tags": 1}, batch.content
    ended = client.patch(f"{V1}/runs/{run_id}", {"status": "FINISHED"}, format="json").json()
    assert ended["status"] == "FINISHED"
    assert ended["end_time"] is not None
    assert ended["params"] == {"lr": "0.1", "model": "cnn"}
    assert ended["tags"] == {"owner": "ml", "stage": "dev"}
    assert ended["metrics"]["loss"] == {
        "value": "NaN",
        "step": 2,
        "timestamp": T0 + 1,
        "min": 0.5,
        "max": 0.5,
        "count": 2,
    }
    assert ended["metrics"]["gain"]["value"] == "-Infinity"
    refused = client.post(
        f"{V1}/runs/{run_id}/metrics", {"metrics": [{"key": "loss", "value": 1}]}, format="json"
    )
    assert "FINISHED" in error(refused, 400)["message"]


def test_changing_a_param_is_a_400_naming_the_key(run: Run, scientist: User) -> None:
    client = api(scientist)
    client.post(f"{V1}/runs/{run.run_uuid}/params", {"params": {"lr": "0.1"}}, format="json")
    response = client.post(
        f"{V1}/runs/{run.run_uuid}/batch",
        {"metrics": [{"key": "loss", "value": 1}], "params": {"lr": "0.2"}},
        format="json",
    )
    body = error(response, 400)
    assert body["field"] == "params.lr"
    assert "'lr'" in body["message"]
    assert not MetricPoint.objects.exists()


def test_a_batch_over_a_thousand_points_is_refused(run: Run, scientist: User) -> None:
    response = api(scientist).post(
        f"{V1}/runs/{run.run_uuid}/metrics",
        {"metrics": [{"key": "loss", "value": i, "step": i} for i in range(1001)]},
        format="json",
    )
    assert error(response, 400)["field"] == "metrics"
    assert not MetricPoint.objects.exists()


def test_a_request_over_one_megabyte_is_refused(run: Run, scientist: User) -> None:
    body = json.dumps({"tags": {"big": "x" * 1_000_001}})
    response = api(scientist).post(
        f"{V1}/runs/{run.run_uuid}/batch", body, content_type="application/json"
    )
    assert error(response, 400)["field"] == "body"


def test_a_metric_value_that_is_not_a_number_is_refused(run: Run, scientist: User) -> None:
    response = api(scientist).post(
        f"{V1}/runs/{run.run_uuid}/metrics",
        {"metrics": [{"key": "loss", "value": "high"}]},
        format="json",
    )
    assert error(response, 400)["field"] == "metrics[0].value"


def test_tags_are_deleted_by_key(run: Run, scientist: User) -> None:
    client = api(scientist)
    client.post(f"{V1}/runs/{run.run_uuid}/tags", {"tags": {"a/b": "1"}}, format="json")
    assert client.delete(f"{V1}/runs/{run.run_uuid}/tags/a/b").status_code == 204
    assert client.get(f"{V1}/runs/{run.run_uuid}").json()["tags"] == {}
    assert client.delete(f"{V1}/runs/{run.run_uuid}/tags/a/b").status_code == 404


def test_a_run_can_be_deleted_and_restored(run: Run, scientist: User) -> None:
    client = api(scientist)
    assert client.delete(f"{V1}/runs/{run.run_uuid}").json()["lifecycle"] == "deleted"
    assert client.post(f"{V1}/runs/{run.run_uuid}/restore").json()["lifecycle"] == "active"


# --- search ---------------------------------------------------------------------------------


@pytest.fixture
def three_runs(experiment: Experiment, scientist: User) -> list[Run]:
    runs = []
    for name, acc, model, stage in (
        ("a", 0.7, "cnn", "dev"),
        ("b", 0.95, "cnn", "prod"),
        ("c", 0.99, "rnn", "dev"),
    ):
        run = run_create(experiment=experiment, name=name, actor=scientist)
        run_log_batch(
            run=run,
            actor=scientist,
            metrics=[MetricInput("acc", acc, 0, T0)],
            params=[("model", model)],
            tags=[("stage", stage)],
        )
        runs.append(run)
    return runs


def test_runs_are_searched_by_params_metrics_tags_and_attributes(
    experiment: Experiment, scientist: User, three_runs: list[Run]
) -> None:
    client = api(scientist)

    def names(filter_string: str, *order_by: str) -> list[str]:
        response = client.post(
            f"{V1}/runs/search",
            {
                "experiment_ids": [experiment.pk],
                "filter": filter_string,
                "order_by": list(order_by),
            },
            format="json",
        )
        assert response.status_code == 200, response.content
        return [r["name"] for r in response.json()["runs"]]

    assert names("params.model = 'cnn' AND metrics.acc > 0.9") == ["b"]
    assert names("tags.stage != 'dev'") == ["b"]
    assert names("metrics.acc >= 0.9", "metrics.acc DESC") == ["c", "b"]
    assert names("", "params.model ASC", "metrics.acc ASC") == ["a", "b", "c"]
    assert names("attributes.run_name LIKE '%b%'") == ["b"]
    assert names("attributes.run_name IN ('a', 'c')", "metrics.acc") == ["a", "c"]
    assert names("attributes.status = 'RUNNING' and params.model ILIKE 'CN%'", "metrics.acc") == [
        "a",
        "b",
    ]
    assert names("metrics.missing > 0") == []


@pytest.mark.parametrize(
    "bad",
    [
        "metrics.acc > 'high'",
        "params.model > 1",
        "metrics.acc > 0.9 OR params.x = '1'",
        "nonsense.x = '1'",
        "metrics.acc >",
        "attributes.colour = 'red'",
    ],
)
def test_a_filter_outside_the_supported_syntax_is_a_400(
    experiment: Experiment, scientist: User, bad: str
) -> None:
    response = api(scientist).post(
        f"{V1}/runs/search", {"experiment_ids": [experiment.pk], "filter": bad}, format="json"
    )
    assert error(response, 400)["field"] == "filter"


def test_search_pages_cover_every_run_once(
    experiment: Experiment, scientist: User, three_runs: list[Run]
) -> None:
    client = api(scientist)
    seen: list[str] = []
    token = ""
    while True:
        page = client.get(
            f"{V1}/experiments/{experiment.pk}/runs",
            {"max_results": 2, "page_token": token, "order_by": "metrics.acc DESC"},
        ).json()
        seen += [r["name"] for r in page["runs"]]
        token = page["next_page_token"]
        if not token:
            break
    assert seen == ["c", "b", "a"]


def test_search_costs_the_same_number_of_queries_for_many_runs(
    experiment: Experiment, scientist: User, three_runs: list[Run]
) -> None:
    client = api(scientist)
    query = {
        "experiment_ids": [experiment.pk],
        "filter": "metrics.acc > 0",
        "order_by": ["metrics.acc"],
    }
    with CaptureQueriesContext(connection) as few:
        assert len(client.post(f"{V1}/runs/search", query, format="json").json()["runs"]) == 3
    for index in range(5):
        extra = run_create(experiment=experiment, name=f"x{index}", actor=scientist)
        run_log_batch(
            run=extra,
            actor=scientist,
            metrics=[MetricInput("acc", 0.5, 0, T0)],
            params=[("p", "1")],
            tags=[("t", "1")],
        )
    with CaptureQueriesContext(connection) as many:
        assert len(client.post(f"{V1}/runs/search", query, format="json").json()["runs"]) == 8
    assert len(many.captured_queries) == len(few.captured_queries)


# --- metric history -------------------------------------------------------------------------


def test_history_is_paged_in_step_order(run: Run, scientist: User) -> None:
    run_log_batch(
        run=run,
        actor=scientist,
        metrics=[MetricInput("loss", 1.0 / (i + 1), i, T0 + i) for i in range(25)],
    )
    client = api(scientist)
    steps: list[int] = []
    token = ""
    while True:
        page = client.get(
            f"{V1}/runs/{run.run_uuid}/metric-history",
            {"key": "loss", "limit": 10, "page_token": token},
        ).json()
        steps += [p["step"] for p in page["points"]]
        token = page["next_page_token"]
        if not token:
            break
    assert steps == list(range(25))


def test_a_downsampled_history_keeps_every_spike(run: Run, scientist: User) -> None:
    values = [math.sin(i / 50) for i in range(3000)]
    values[1234] = 100.0  # a spike a naive sampler would skip
    values[2345] = -50.0
    for start in range(0, 3000, 1000):
        run_log_batch(
            run=run,
            actor=scientist,
            metrics=[MetricInput("loss", values[i], i, T0 + i) for i in range(start, start + 1000)],
        )
    body = (
        api(scientist)
        .get(f"{V1}/runs/{run.run_uuid}/metric-history", {"key": "loss", "max_points": 200})
        .json()
    )
    assert body["sampled"] is True
    points = body["points"]
    assert len(points) <= 200
    assert {"step": 1234, "value": 100.0, "timestamp": T0 + 1234} in points
    assert {"step": 2345, "value": -50.0, "timestamp": T0 + 2345} in points
    assert [p["step"] for p in points] == sorted(p["step"] for p in points)
    zoomed = (
        api(scientist)
        .get(
            f"{V1}/runs/{run.run_uuid}/metric-history",
            {"key": "loss", "max_points": 200, "step_min": 1200, "step_max": 1299},
        )
        .json()
    )
    assert zoomed["sampled"] is False
    assert [p["step"] for p in zoomed["points"]] == list(range(1200, 1300))


# --- artifacts ------------------------------------------------------------------------------


def test_artifacts_are_uploaded_listed_and_downloaded(run: Run, scientist: User) -> None:
    client = api(scientist)
    uploaded = client.put(
        f"{V1}/runs/{run.run_uuid}/artifacts/model/weights.bin",
        b"\x00\x01weights",
        content_type="application/octet-stream",
    )
    assert uploaded.status_code == 201, uploaded.content
    client.put(f"{V1}/runs/{run.run_uuid}/artifacts/notes.txt", b"hello", content_type="text/plain")
    listing = client.get(f"{V1}/runs/{run.run_uuid}/artifacts").json()["files"]
    assert listing == [
        {"path": "model", "is_dir": True, "size": None},
        {"path": "notes.txt", "is_dir": False, "size": 5},
    ]
    inner = client.get(f"{V1}/runs/{run.run_uuid}/artifacts", {"path": "model"}).json()["files"]
    assert inner == [{"path": "model/weights.bin", "is_dir": False, "size": 9}]
    download = client.get(f"{V1}/runs/{run.run_uuid}/artifacts/model/weights.bin")
    assert download.status_code == 200
    assert b"".join(download.streaming_content) == b"\x00\x01weights"
    assert client.get(f"{V1}/runs/{run.run_uuid}/artifacts/missing.bin").status_code == 404


def test_artifact_paths_cannot_climb_out_of_the_run(run: Run, scientist: User) -> None:
    response = api(scientist).put(
        f"{V1}/runs/{run.run_uuid}/artifacts/a/../../other/x",
        b"x",
        content_type="application/octet-stream",
    )
    assert response.status_code in (400, 404)


def test_artifacts_cannot_be_uploaded_to_an_ended_run(run: Run, scientist: User) -> None:
    api(scientist).patch(f"{V1}/runs/{run.run_uuid}", {"status": RunStatus.KILLED}, format="json")
    response = api(scientist).put(
        f"{V1}/runs/{run.run_uuid}/artifacts/late.txt", b"x", content_type="text/plain"
    )
    assert "KILLED" in error(response, 400)["message"]


def test_viewers_read_but_do_not_write(run: Run, viewer: User) -> None:
    client = api(viewer)
    assert client.get(f"{V1}/runs/{run.run_uuid}").status_code == 200
    response = client.post(
        f"{V1}/runs/{run.run_uuid}/metrics", {"metrics": [{"key": "x", "value": 1}]}, format="json"
    )
    assert response.status_code == 403
