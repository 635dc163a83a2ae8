"""Full-resolution metric history through both APIs: every value comes back exactly (the
pages are encoded from the rows, not through a serializer), page by page: in step order
through the native API, in MLflow's order (time, then step, then value) through MLflow's."""

from __future__ import annotations

import math
import re
import threading
from datetime import UTC, datetime
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from experiments.models import MetricSummary, Run
from experiments.services import MetricInput, Point, metrics_log_batch, run_log_batch
from tests.experiments.conftest import api, error
from tests.factories import make_token

pytestmark = pytest.mark.django_db

T0 = 1_700_000_000_000
VALUES = [
    0.1,
    1 / 3,
    -1.5,
    5e-324,  # the smallest subnormal
    1.7976931348623157e308,
    -2.5e-7,
    1e16,
    math.nan,
    math.inf,
    -math.inf,
    42.0,
]


def as_json(value: float) -> float | str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return value


@pytest.fixture
def logged(run: Run, scientist: User) -> list[MetricInput]:
    points = [MetricInput("val loss", v, step, T0 + step) for step, v in enumerate(VALUES)]
    run_log_batch(run=run, actor=scientist, metrics=points[::-1])  # arrival order is not step order
    return points


def _same(got: list[Any], points: list[MetricInput]) -> None:
    assert [g["step"] for g in got] == [p.step for p in points]
    assert [g["timestamp"] for g in got] == [p.timestamp for p in points]
    assert [g["value"] for g in got] == [as_json(p.value) for p in points]


def test_native_history_pages_return_every_value_exactly(
    run: Run, scientist: User, logged: list[MetricInput]
) -> None:
    got: list[Any] = []
    token = ""
    pages = 0
    while True:
        response = api(scientist).get(
            f"/api/v1/runs/{run.run_uuid}/metric-history",
            {"key": "val loss", "limit": 4, "page_token": token},
        )
        assert response["Content-Type"] == "application/json"
        body = response.json()
        assert (body["key"], body["sampled"]) == ("val loss", False)
        got += body["points"]
        pages += 1
        token = body["next_page_token"]
        if token is None:
            break
    assert pages == 3
    _same(got, logged)


def test_mlflow_history_pages_return_every_value_exactly(
    run: Run, scientist: User, logged: list[MetricInput]
) -> None:
    client = Client(headers={"Authorization": f"Bearer {make_token(scientist)}"})
    got: list[Any] = []
    params = {"run_id": run.run_uuid, "metric_key": "val loss", "max_results": 4}
    while True:
        body = client.get("/api/2.0/mlflow/metrics/get-history", params).json()
        assert {m["key"] for m in body["metrics"]} == {"val loss"}
        got += body["metrics"]
        if "next_page_token" not in body:
            break
        params["page_token"] = body["next_page_token"]
    _same(got, logged)


def test_a_history_page_costs_the_same_queries_however_long(run: Run, scientist: User) -> None:
    url = f"/api/v1/runs/{run.run_uuid}/metric-history"
    run_log_batch(
        run=run, actor=scientist, metrics=[MetricInput("x", 1.0, i, T0) for i in range(10)]
    )
    with CaptureQueriesContext(connection) as short:
        api(scientist).get(url, {"key": "x"})
    run_log_batch(
        run=run, actor=scientist, metrics=[MetricInput("x", 1.0, i, T0) for i in range(10, 1000)]
    )
    with CaptureQueriesContext(connection) as long:
        assert len(api(scientist).get(url, {"key": "x"}).json()["points"]) == 1000
    assert len(long.captured_queries) == len(short.captured_queries)


def _mlflow_pages(user: User, run: Run, key: str, max_results: int) -> list[dict[str, Any]]:
    client = Client(headers={"Authorization": f"Bearer {make_token(user)}"})
    got: list[dict[str, Any]] = []
    params: dict[str, Any] = {"run_id": run.run_uuid, "metric_key": key}
    params["max_results"] = max_results
    while True:
        body = client.get("/api/2.0/mlflow/metrics/get-history", params).json()
        got += body["metrics"]
        if "next_page_token" not in body:
            return got
        params["page_token"] = body["next_page_token"]


def _native_pages(user: User, run: Run, key: str, limit: int) -> list[dict[str, Any]]:
    got: list[dict[str, Any]] = []
    token = ""
    while True:
        url = f"/api/v1/runs/{run.run_uuid}/metric-history"
        body = api(user).get(url, {"key": key, "limit": limit, "page_token": token}).json()
        got += body["points"]
        token = body["next_page_token"]
        if token is None:
            return got


def mlflows_order(point: MetricInput) -> tuple[int, int, float]:
    # SqlAlchemyStore.get_metric_history: ORDER BY timestamp, step, value; NaN is 0.
    return (point.timestamp, point.step, 0.0 if math.isnan(point.value) else point.value)


def _in_step_order(run: Run, key: str) -> bool:
    return MetricSummary.objects.get(run=run, key=key).in_step_order


# Logged batch by batch, in this order. Ties of one step and time: several values logged at
# once (NaN sorts as the 0 MLflow stores for it).
RESTARTED = [
    # A training loop that resumed from step 0 after a restart, in one batch logged
    # backwards (points that arrive out of order): step order is not MLflow's order.
    (
        [MetricInput("loss", 1.0 - step / 10, step, T0 + step) for step in range(5)]
        + [MetricInput("loss", 0.5 - step / 10, step, T0 + 100 + step) for step in range(5)]
        + [MetricInput("loss", v, 7, T0 + 50) for v in (2.0, math.nan, -1.0, 0.5)]
    )[::-1]
]
IN_ORDER = [
    # Steps and times that never go down (equal times on different steps, equal steps at
    # different times), ties logged in MLflow's order, over several batches: step order is
    # MLflow's order.
    [MetricInput("loss", 1.0 - step / 10, step, T0 + step) for step in range(5)],
    [MetricInput("loss", v, 7, T0 + 50) for v in (-1.0, math.nan, 0.0, 0.5, 2.0)],
    [MetricInput("loss", 0.1, 8, T0 + 60), MetricInput("loss", 0.2, 9, T0 + 60)],
    [MetricInput("loss", 0.3, 9, T0 + 61), MetricInput("loss", -0.3, 10, T0 + 70)],
]


@pytest.mark.parametrize(
    ("batches", "in_step_order"),
    [(RESTARTED, False), (IN_ORDER, True)],
    ids=["restarted-and-out-of-order", "in-step-order"],
)
def test_mlflow_history_comes_in_mlflows_order_and_native_history_in_step_order(
    run: Run, scientist: User, batches: list[list[MetricInput]], in_step_order: bool
) -> None:
    for batch in batches:
        run_log_batch(run=run, actor=scientist, metrics=batch)
    # Both ways of reading MLflow's order are covered: through the step index, or sorted.
    assert _in_step_order(run, "loss") is in_step_order
    points = [point for batch in batches for point in batch]

    for page_size in (1, 3, 4, 100):
        _same(_mlflow_pages(scientist, run, "loss", page_size), sorted(points, key=mlflows_order))
        by_step = _native_pages(scientist, run, "loss", page_size)
        assert [(p["step"], p["timestamp"]) for p in by_step] == sorted(
            (p.step, p.timestamp) for p in points
        )


def test_a_page_token_continues_only_the_order_it_came_from(run: Run, scientist: User) -> None:
    run_log_batch(
        run=run, actor=scientist, metrics=[MetricInput("x", 1.0, i, T0 + i) for i in range(5)]
    )
    native = api(scientist).get(
        f"/api/v1/runs/{run.run_uuid}/metric-history", {"key": "x", "limit": 2}
    )
    step_token = native.json()["next_page_token"]
    client = Client(headers={"Authorization": f"Bearer {make_token(scientist)}"})
    params = {"run_id": run.run_uuid, "metric_key": "x", "max_results": 2}
    time_token = client.get("/api/2.0/mlflow/metrics/get-history", params).json()["next_page_token"]

    refused = client.get(
        "/api/2.0/mlflow/metrics/get-history", {**params, "page_token": step_token}
    )
    assert refused.status_code == 400
    assert refused.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    assert "page_token" in refused.json()["message"]
    crossed = api(scientist).get(
        f"/api/v1/runs/{run.run_uuid}/metric-history",
        {"key": "x", "limit": 2, "page_token": time_token},
    )
    assert error(crossed, 400)["field"] == "page_token"


# --- MLflow's order through the step index (MetricSummary.in_step_order) --------------------


def test_a_series_logged_in_order_over_several_batches_stays_in_step_order(
    run: Run, scientist: User
) -> None:
    for batch in IN_ORDER:
        run_log_batch(run=run, actor=scientist, metrics=batch)
        assert _in_step_order(run, "loss")
    # Job log metrics take the same write path.
    now = datetime.now(tz=UTC)
    metrics_log_batch(run_id=run.pk, points=[Point("loss", 0.0, 11, now)])
    assert _in_step_order(run, "loss")


BASE = [MetricInput("x", 1.0, 10, T0 + 10), MetricInput("x", 2.0, 11, T0 + 11)]


@pytest.mark.parametrize(
    "batches",
    [
        # Inside one batch.
        [BASE + [MetricInput("x", 1.0, 9, T0 + 12)]],  # a lower step
        [BASE + [MetricInput("x", 1.0, 12, T0 + 9)]],  # an older timestamp
        [BASE + [MetricInput("x", 1.0, 11, T0 + 11)]],  # a tie by a lower value
        [BASE + [MetricInput("x", math.nan, 11, T0 + 11)]],  # a tie by NaN (0) below 2.0
        # Across batches: the second starts before the first's last point.
        [BASE, [MetricInput("x", 1.0, 10, T0 + 20), MetricInput("x", 1.0, 20, T0 + 21)]],
        [BASE, [MetricInput("x", 1.0, 20, T0 + 5), MetricInput("x", 1.0, 21, T0 + 22)]],
        # ... or at its very step and timestamp, whatever the value.
        [BASE, [MetricInput("x", 5.0, 11, T0 + 11)]],
        # A restart: the second batch in order itself, later in time, lower in steps.
        [BASE, [MetricInput("x", 1.0, 0, T0 + 100), MetricInput("x", 1.0, 1, T0 + 101)]],
    ],
    ids=[
        "lower-step",
        "older-timestamp",
        "tie-lower-value",
        "tie-nan-below",
        "batch-lower-step",
        "batch-older-timestamp",
        "batch-same-step-and-time",
        "restart",
    ],
)
def test_any_point_out_of_mlflows_order_takes_the_series_out_of_step_order_for_good(
    run: Run, scientist: User, batches: list[list[MetricInput]]
) -> None:
    for batch in batches:
        run_log_batch(run=run, actor=scientist, metrics=batch)
    assert not _in_step_order(run, "x")
    # Points in order afterwards do not bring it back (the order is not checked again).
    run_log_batch(run=run, actor=scientist, metrics=[MetricInput("x", 1.0, 1000, T0 + 1000)])
    assert not _in_step_order(run, "x")
    # Another key of the same run is its own series.
    run_log_batch(run=run, actor=scientist, metrics=[MetricInput("y", 1.0, 0, T0)])
    assert _in_step_order(run, "y")


@pytest.mark.django_db(transaction=True)
def test_two_racing_batches_that_interleave_take_the_series_out_of_step_order(
    run: Run, scientist: User
) -> None:
    # Each in order by itself; whichever commits first, the other goes back in steps or in
    # time from its last point.
    run_log_batch(run=run, actor=scientist, metrics=[MetricInput("x", 0.0, 0, T0)])
    batches = [
        [MetricInput("x", 1.0, step, T0 + 100 + step) for step in range(1, 10)],
        [MetricInput("x", 1.0, step, T0 + step) for step in range(10, 20)],
    ]
    start = threading.Barrier(len(batches))
    failures: list[BaseException] = []

    def log(batch: list[MetricInput]) -> None:
        try:
            start.wait()
            run_log_batch(run=run, actor=scientist, metrics=batch)
        except BaseException as exc:  # noqa: BLE001 - reported by the test below
            failures.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=log, args=(batch,)) for batch in batches]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    summary = MetricSummary.objects.get(run=run, key="x")
    assert (summary.count, summary.in_step_order) == (20, False)


def _points_queries(queries: CaptureQueriesContext) -> list[str]:
    return [q["sql"] for q in queries.captured_queries if "experiments_metricpoint" in q["sql"]]


def _ordered_by(sql: str) -> str:
    """The column a query sorts by first (the ORM may name it by its place in the SELECT)."""
    selected = re.findall(r'AS "(\w+)"', sql.split(" FROM ", 1)[0])
    first = sql.split(" ORDER BY ", 1)[1].split()[0]
    return selected[int(first) - 1] if first.isdigit() else first.split(".")[-1].strip('"')


def test_mlflow_history_of_a_series_in_step_order_is_read_through_the_step_index(
    run: Run, scientist: User
) -> None:
    for batch in IN_ORDER:
        run_log_batch(run=run, actor=scientist, metrics=batch)
    client = Client(headers={"Authorization": f"Bearer {make_token(scientist)}"})
    params = {"run_id": run.run_uuid, "metric_key": "loss", "max_results": 3}
    with CaptureQueriesContext(connection) as queries:
        body = client.get("/api/2.0/mlflow/metrics/get-history", params).json()
    params["page_token"] = body["next_page_token"]
    with CaptureQueriesContext(connection) as next_queries:
        client.get("/api/2.0/mlflow/metrics/get-history", params)
    # One query a page, in step order (what the (run, key, step) index gives).
    for captured in (queries, next_queries):
        [sql] = _points_queries(captured)
        assert _ordered_by(sql) == "step"

    # Out of step order: the database sorts by time.
    run_log_batch(run=run, actor=scientist, metrics=[MetricInput("loss", 1.0, 0, T0 + 1000)])
    with CaptureQueriesContext(connection) as sorted_queries:
        client.get("/api/2.0/mlflow/metrics/get-history", params)
    assert _ordered_by(_points_queries(sorted_queries)[-1]) == "timestamp"


def test_a_page_token_carries_on_when_the_series_leaves_step_order_between_pages(
    run: Run, scientist: User
) -> None:
    points = [MetricInput("x", float(step), step, T0 + step) for step in range(10)]
    run_log_batch(run=run, actor=scientist, metrics=points)
    client = Client(headers={"Authorization": f"Bearer {make_token(scientist)}"})
    params = {"run_id": run.run_uuid, "metric_key": "x", "max_results": 4}
    first = client.get("/api/2.0/mlflow/metrics/get-history", params).json()
    assert _in_step_order(run, "x")

    # The loop restarts from step 0, later in time: the rest is read sorted by time.
    restart = [MetricInput("x", -float(step), step, T0 + 100 + step) for step in range(3)]
    run_log_batch(run=run, actor=scientist, metrics=restart)
    assert not _in_step_order(run, "x")
    params["page_token"] = first["next_page_token"]
    got = first["metrics"] + _mlflow_pages_from(client, params)
    _same(got, sorted(points + restart, key=mlflows_order))


def _mlflow_pages_from(client: Client, params: dict[str, Any]) -> list[dict[str, Any]]:
    got: list[dict[str, Any]] = []
    while True:
        body = client.get("/api/2.0/mlflow/metrics/get-history", params).json()
        got += body["metrics"]
        if "next_page_token" not in body:
            return got
        params = {**params, "page_token": body["next_page_token"]}
