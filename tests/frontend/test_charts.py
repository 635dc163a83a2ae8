"""Chart figures are pure functions: data in, a plotly figure dict out, checked without a
browser (and validated by plotly's own figure schema)."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from typing import Any

import plotly.graph_objects as go
import pytest

from frontend.charts import MAX_CHART_POINTS, metric_figure, thin_min_max
from frontend.endpoints.charts import invocations_figure, latency_figure


def test_metric_figure_is_a_valid_plotly_line_of_the_points() -> None:
    figure = metric_figure("loss", [(0, 0.9), (1, 0.5), (2, 0.25)])
    go.Figure(figure)  # raises on any property plotly does not know
    (trace,) = figure["data"]
    assert trace["type"] == "scatter"
    assert trace["name"] == "loss"
    assert trace["x"] == [0, 1, 2]
    assert trace["y"] == [0.9, 0.5, 0.25]
    assert figure["layout"]["xaxis"]["title"]["text"] == "step"
    assert figure["layout"]["annotations"] == []


def test_an_empty_series_says_so_on_the_chart() -> None:
    figure = metric_figure("accuracy", [])
    go.Figure(figure)
    assert figure["data"][0]["x"] == []
    assert [a["text"] for a in figure["layout"]["annotations"]] == ["No values yet"]


def test_non_finite_values_become_gaps_so_the_figure_is_valid_json() -> None:
    figure = metric_figure("loss", [(0, 1.0), (1, math.nan), (2, math.inf), (3, -math.inf)])
    assert figure["data"][0]["y"] == [1.0, None, None, None]
    text = json.dumps(figure, allow_nan=False)  # what JSON.parse in the browser accepts
    assert "NaN" not in text


def test_a_metric_name_is_not_read_as_a_hover_template() -> None:
    figure = metric_figure("%{y}<b>", [(0, 1.0)])
    assert "%{y}<b>" not in figure["data"][0]["hovertemplate"]
    assert figure["data"][0]["name"] == "%{y}<b>"


def test_short_series_show_markers_long_ones_only_the_line() -> None:
    assert metric_figure("m", [(i, 1.0) for i in range(10)])["data"][0]["mode"] == "lines+markers"
    assert metric_figure("m", [(i, 1.0) for i in range(500)])["data"][0]["mode"] == "lines"


def test_long_series_are_thinned_but_keep_every_spike_and_dip() -> None:
    points = [(step, 1.0) for step in range(100_000)]
    points[31_337] = (31_337, 250.0)  # a spike sampling would likely miss
    points[77_001] = (77_001, -40.0)  # and a dip
    figure = metric_figure("loss", points)
    xs, ys = figure["data"][0]["x"], figure["data"][0]["y"]
    assert len(xs) <= MAX_CHART_POINTS
    assert max(ys) == 250.0
    assert min(ys) == -40.0
    assert 31_337 in xs
    assert 77_001 in xs
    assert xs == sorted(xs)  # still drawn left to right


def test_thinning_leaves_short_series_alone() -> None:
    points = [(step, float(step)) for step in range(50)]
    assert thin_min_max(points, max_points=50) == points


def test_thinning_spans_every_step_from_first_to_last() -> None:
    points = [(step, float(step % 7)) for step in range(1000)]
    thinned = thin_min_max(points, max_points=100)
    assert len(thinned) <= 100
    assert thinned[0] == (0, 0.0)
    assert thinned[-1] == (999, 999 % 7)


def test_thinning_keeps_a_bucket_of_only_gaps_as_a_gap() -> None:
    points = [(step, math.nan if step < 20 else 1.0) for step in range(100)]
    thinned = thin_min_max(points, max_points=20)
    first_bucket = [point for point in thinned if point[0] < 20]
    assert first_bucket
    assert all(math.isnan(value) for _, value in first_bucket)


def test_thinning_needs_room_for_a_low_and_a_high() -> None:
    with pytest.raises(ValueError, match="at least 4"):
        thin_min_max([(0, 1.0)] * 10, max_points=3)


# --- endpoint traffic --------------------------------------------------------------------


def _point(
    at: str, count: int, e4: int = 0, e5: int = 0, p50: float | None = 5.0
) -> dict[str, Any]:
    return {
        "at": at,
        "count": count,
        "errors_4xx": e4,
        "errors_5xx": e5,
        "mean_ms": p50,
        "p50_ms": p50,
        "p90_ms": None if p50 is None else p50 * 2,
        "p99_ms": None if p50 is None else p50 * 4,
        "max_ms": None if p50 is None else p50 * 5,
    }


TRAFFIC = {
    "since": "2025-01-01T12:00:30+00:00",
    "bucket_seconds": 60,
    "totals": {"count": 13, "errors_4xx": 2, "errors_5xx": 1},
    "variants": {
        "B": [_point("2025-01-01T12:02:00+00:00", 3, e5=1, p50=40.0)],
        "A": [
            _point("2025-01-01T12:00:00+00:00", 4, e4=2),
            _point("2025-01-01T12:02:00+00:00", 6, p50=8.0),
        ],
    },
}
UNTIL = datetime(2025, 1, 1, 12, 3, 10, tzinfo=UTC)


def test_invocations_chart_has_counts_4xx_and_5xx_per_variant_with_quiet_minutes_as_zero() -> None:
    figure = invocations_figure(TRAFFIC, until=UNTIL)
    go.Figure(figure)
    names = [trace["name"] for trace in figure["data"]]
    assert names == ["A invocations", "A 4xx", "A 5xx", "B invocations", "B 4xx", "B 5xx"]
    first = figure["data"][0]
    # every minute of the window, from the first bucket to `until`
    assert first["x"] == [
        "2025-01-01T12:00:00+00:00",
        "2025-01-01T12:01:00+00:00",
        "2025-01-01T12:02:00+00:00",
        "2025-01-01T12:03:00+00:00",
    ]
    assert first["y"] == [4, 0, 6, 0]
    assert figure["data"][1]["y"] == [2, 0, 0, 0]
    assert figure["data"][5]["y"] == [0, 0, 1, 0]
    # a variant keeps one colour; what is counted is told by the dash
    assert len({trace["line"]["color"] for trace in figure["data"][:3]}) == 1
    assert [trace["line"]["dash"] for trace in figure["data"][:3]] == ["solid", "dot", "dash"]
    assert figure["data"][0]["line"]["color"] != figure["data"][3]["line"]["color"]
    assert figure["layout"]["annotations"] == []
    assert figure["layout"]["xaxis"]["type"] == "date"


def test_latency_chart_has_p50_p90_p99_per_variant_with_gaps_without_traffic() -> None:
    figure = latency_figure(TRAFFIC, until=UNTIL)
    go.Figure(figure)
    by_name = {trace["name"]: trace["y"] for trace in figure["data"]}
    assert set(by_name) == {"A p50", "A p90", "A p99", "B p50", "B p90", "B p99"}
    assert by_name["A p50"] == [5.0, None, 8.0, None]
    assert by_name["A p99"] == [20.0, None, 32.0, None]
    assert by_name["B p90"] == [None, None, 80.0, None]
    assert all(trace["connectgaps"] is False for trace in figure["data"])
    assert figure["layout"]["yaxis"]["title"]["text"] == "latency (ms)"
    json.dumps(figure, allow_nan=False)


def test_traffic_charts_without_invocations_say_so() -> None:
    quiet = {**TRAFFIC, "variants": {}, "totals": {"count": 0, "errors_4xx": 0, "errors_5xx": 0}}
    for figure in (invocations_figure(quiet, until=UNTIL), latency_figure(quiet, until=UNTIL)):
        go.Figure(figure)
        assert figure["data"] == []
        assert [a["text"] for a in figure["layout"]["annotations"]] == [
            "No invocations in this window"
        ]


def test_a_variant_name_is_not_read_as_a_hover_template() -> None:
    odd = {**TRAFFIC, "variants": {"%{y}": TRAFFIC["variants"]["A"]}}
    trace = invocations_figure(odd)["data"][0]
    assert trace["name"] == "%{y} invocations"
    assert "%{y}" not in trace["hovertemplate"].replace("%{y:", "")


def test_requests_refused_before_a_variant_was_chosen_have_a_name_of_their_own() -> None:
    refused = {**TRAFFIC, "variants": {"": [_point("2025-01-01T12:01:00+00:00", 2, e5=2)]}}
    figure = invocations_figure(refused, until=UNTIL)
    assert [trace["name"] for trace in figure["data"]][::3] == ["(no variant) invocations"]
    assert figure["data"][2]["y"] == [0, 2, 0, 0]
