"""Full-resolution metric history through both APIs: every value comes back exactly (the
pages are encoded from the rows, not through a serializer), in step order, page by page."""

from __future__ import annotations

import math
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from experiments.models import Run
from experiments.services import MetricInput, run_log_batch
from tests.experiments.conftest import api
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
