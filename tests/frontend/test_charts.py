"""Chart figures are pure functions: data in, a plotly figure dict out, checked without a
browser (and validated by plotly's own figure schema)."""

from __future__ import annotations

import json
import math

import plotly.graph_objects as go
import pytest

from frontend.charts import MAX_CHART_POINTS, metric_figure, thin_min_max


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
