"""Figures of the compare view: runs' params and latest metric values in, plotly figure dicts
out. Pure functions, no Django and no plotly import (see frontend/charts.py); the tests
validate them with `plotly.graph_objects`.

A column is named as in the search syntax: `params.lr`, `metrics.acc`. A column whose values
(of the runs that have it) all read as finite numbers is numeric; any other is categorical,
its values in sorted order, and "—" for runs without the key. The metric curves of the compare
view are not here: the page draws them from the series endpoint (smoothing and the x-axis are
chosen in the browser).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from frontend.charts import FONT, GRID_COLOUR, TEXT_COLOUR

Figure = dict[str, Any]
ABSENT = "—"
MAX_PARALLEL_PARAMS = 12  # axes before the metric's; more are unreadable


@dataclass(frozen=True)
class RunValues:
    """One run as the compare charts see it."""

    name: str
    colour: str
    params: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float | None] = field(default_factory=dict)  # latest; None is NaN


def column_options(runs: Sequence[RunValues]) -> list[str]:
    """Every param, then every metric any of the runs has, as column names."""
    params = sorted({key for run in runs for key in run.params})
    metrics = sorted({key for run in runs for key in run.metrics})
    return [f"params.{key}" for key in params] + [f"metrics.{key}" for key in metrics]


def raw_value(run: RunValues, column: str) -> str | float | None:
    """The run's value of `column`; None when it lacks the key (or the metric is NaN)."""
    entity, _, key = column.partition(".")
    if entity == "params":
        return run.params.get(key)
    if entity == "metrics":
        return run.metrics.get(key)
    raise ValueError(f"unknown column {column!r}")


def _as_number(value: str | float | None) -> float | None:
    if value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def is_numeric(values: Sequence[str | float | None]) -> bool:
    present = [value for value in values if value is not None]
    return bool(present) and all(_as_number(value) is not None for value in present)


def _axis() -> dict[str, Any]:
    return {"gridcolor": GRID_COLOUR, "zeroline": False, "linecolor": "#cfd4dc", "automargin": True}


def _layout(height: int, **extra: Any) -> dict[str, Any]:
    return {
        "height": height,
        "paper_bgcolor": "rgba(0,0,0,0)",
        "plot_bgcolor": "rgba(0,0,0,0)",
        "font": {"family": FONT, "size": 11, "color": TEXT_COLOUR},
        **extra,
    }


def _note(text: str) -> dict[str, Any]:
    return {
        "text": text,
        "showarrow": False,
        "xref": "paper",
        "yref": "paper",
        "x": 0.5,
        "y": 0.5,
        "font": {"size": 13, "color": "#8a93a3"},
    }


def _dimension(label: str, values: Sequence[str | float | None]) -> dict[str, Any]:
    if is_numeric(values) and all(value is not None for value in values):
        return {"label": label, "values": [_as_number(value) for value in values]}
    texts = [ABSENT if value is None else str(value) for value in values]
    categories = sorted(set(texts), key=lambda text: (text == ABSENT, text))
    codes = {text: index for index, text in enumerate(categories)}
    return {
        "label": label,
        "values": [codes[text] for text in texts],
        "tickvals": list(range(len(categories))),
        "ticktext": categories,
        "range": [-0.5, len(categories) - 0.5]
        if len(categories) == 1
        else [0, len(categories) - 1],
    }


def parallel_coordinates_figure(
    runs: Sequence[RunValues], params: Sequence[str], metric: str
) -> Figure:
    """One axis per param (the first MAX_PARALLEL_PARAMS) and the metric last; one line per
    run that has a finite value of the metric, coloured by it."""
    kept = [run for run in runs if _as_number(run.metrics.get(metric)) is not None]
    layout = _layout(340, margin={"l": 60, "r": 60, "t": 48, "b": 24})
    if not kept:
        return {
            "data": [],
            "layout": {**layout, "annotations": [_note(f"No run has a value of {metric}")]},
        }
    metric_values = [_as_number(run.metrics.get(metric)) for run in kept]
    dimensions = [
        _dimension(key, [run.params.get(key) for run in kept])
        for key in params[:MAX_PARALLEL_PARAMS]
    ]
    dimensions.append({"label": metric, "values": metric_values})
    return {
        "data": [
            {
                "type": "parcoords",
                "dimensions": dimensions,
                "line": {
                    "color": metric_values,
                    "colorscale": "Viridis",
                    "showscale": True,
                    "colorbar": {"title": {"text": metric}, "thickness": 12},
                },
                "labelfont": {"size": 12},
            }
        ],
        "layout": layout,
    }


def scatter_figure(runs: Sequence[RunValues], x: str, y: str) -> Figure:
    """One marker per run that has both columns, in the run's colour, named on hover."""
    xs_raw = [raw_value(run, x) for run in runs]
    ys_raw = [raw_value(run, y) for run in runs]
    x_numeric, y_numeric = is_numeric(xs_raw), is_numeric(ys_raw)

    def shown(value: str | float | None, numeric: bool) -> str | float | None:
        return _as_number(value) if numeric else (None if value is None else str(value))

    points = [
        (run, shown(xv, x_numeric), shown(yv, y_numeric))
        for run, xv, yv in zip(runs, xs_raw, ys_raw, strict=True)
    ]
    points = [(run, xv, yv) for run, xv, yv in points if xv is not None and yv is not None]
    layout = _layout(
        320,
        margin={"l": 56, "r": 16, "t": 12, "b": 44},
        showlegend=False,
        hovermode="closest",
        xaxis={**_axis(), "title": {"text": x}, "type": "linear" if x_numeric else "category"},
        yaxis={**_axis(), "title": {"text": y}, "type": "linear" if y_numeric else "category"},
        annotations=[] if points else [_note("No run has both values")],
    )
    return {
        "data": [
            {
                "type": "scatter",
                "mode": "markers",
                "x": [xv for _, xv, _ in points],
                "y": [yv for _, _, yv in points],
                "text": [run.name for run, _, _ in points],
                "marker": {"color": [run.colour for run, _, _ in points], "size": 11},
                # Names come from the trace (text, meta), never spliced into the template.
                "meta": [x, y],
                "hovertemplate": "%{text}<br>%{meta[0]}: %{x}<br>%{meta[1]}: %{y}<extra></extra>",
            }
        ],
        "layout": layout,
    }
