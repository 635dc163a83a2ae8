"""The compare view's figures are pure functions: runs' values in, a plotly figure dict out,
checked without a browser and validated by plotly's own figure schema."""

from __future__ import annotations

import json

import plotly.graph_objects as go

from frontend.experiments.charts import (
    MAX_PARALLEL_PARAMS,
    RunValues,
    column_options,
    is_numeric,
    parallel_coordinates_figure,
    scatter_figure,
)

RUNS = [
    RunValues("small", "#111111", {"lr": "0.1", "model": "cnn"}, {"acc": 0.7, "loss": 0.9}),
    RunValues("large", "#222222", {"lr": "0.01", "model": "resnet"}, {"acc": 0.95}),
    RunValues("odd", "#333333", {"lr": "0.05"}, {"acc": None, "loss": 0.2}),  # acc is NaN
]


def test_columns_are_every_param_then_every_metric() -> None:
    assert column_options(RUNS) == ["params.lr", "params.model", "metrics.acc", "metrics.loss"]


def test_numbers_written_as_text_are_numeric_and_words_are_not() -> None:
    assert is_numeric(["0.1", "1e-3", None])
    assert not is_numeric(["0.1", "cnn"])
    assert not is_numeric([None, None])
    assert not is_numeric(["nan"])  # not a finite number: a category


def test_parallel_coordinates_have_an_axis_per_param_and_the_metric_last() -> None:
    figure = parallel_coordinates_figure(RUNS, ["lr", "model"], "acc")
    go.Figure(figure)
    (trace,) = figure["data"]
    assert trace["type"] == "parcoords"
    lr, model, acc = trace["dimensions"]
    # The run whose acc is NaN has no line: it cannot be placed on the metric's axis.
    assert lr == {"label": "lr", "values": [0.1, 0.01]}
    assert model["ticktext"] == ["cnn", "resnet"]
    assert model["values"] == [0, 1]
    assert acc == {"label": "acc", "values": [0.7, 0.95]}
    assert trace["line"]["color"] == [0.7, 0.95]


def test_a_param_some_runs_lack_is_an_axis_of_categories_with_a_dash() -> None:
    figure = parallel_coordinates_figure(RUNS, ["model"], "loss")
    go.Figure(figure)
    model = figure["data"][0]["dimensions"][0]
    assert model["ticktext"] == ["cnn", "—"]  # "odd" has no model
    assert model["values"] == [0, 1]


def test_parallel_coordinates_keep_a_readable_number_of_axes() -> None:
    params = {f"p{i:02d}": str(i) for i in range(20)}
    runs = [RunValues("a", "#000", params, {"m": 1.0}), RunValues("b", "#000", params, {"m": 2.0})]
    figure = parallel_coordinates_figure(runs, sorted(params), "m")
    assert len(figure["data"][0]["dimensions"]) == MAX_PARALLEL_PARAMS + 1


def test_parallel_coordinates_without_values_say_so() -> None:
    figure = parallel_coordinates_figure(RUNS, ["lr"], "f1")
    go.Figure(figure)
    assert figure["data"] == []
    assert figure["layout"]["annotations"][0]["text"] == "No run has a value of f1"


def test_scatter_has_a_marker_per_run_with_both_values_in_its_colour() -> None:
    figure = scatter_figure(RUNS, "params.lr", "metrics.loss")
    go.Figure(figure)
    (trace,) = figure["data"]
    assert trace["x"] == [0.1, 0.05]  # "large" has no loss
    assert trace["y"] == [0.9, 0.2]
    assert trace["text"] == ["small", "odd"]
    assert trace["marker"]["color"] == ["#111111", "#333333"]
    assert figure["layout"]["xaxis"]["type"] == "linear"
    assert figure["layout"]["xaxis"]["title"]["text"] == "params.lr"


def test_scatter_of_a_word_column_is_categorical() -> None:
    figure = scatter_figure(RUNS, "params.model", "metrics.acc")
    go.Figure(figure)
    assert figure["layout"]["xaxis"]["type"] == "category"
    assert figure["data"][0]["x"] == ["cnn", "resnet"]


def test_names_never_become_part_of_the_hover_template() -> None:
    runs = [RunValues("%{y}<b>", "#000", {"a": "1"}, {"m": 1.0})]
    figure = scatter_figure(runs, "params.a", "metrics.m")
    trace = figure["data"][0]
    assert "%{y}<b>" not in trace["hovertemplate"]
    assert trace["text"] == ["%{y}<b>"]
    json.dumps(figure)  # plain JSON for json_script
