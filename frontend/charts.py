"""Chart figures for the UI: selector data in, a plotly figure dict out.

Pure functions, no Django and no plotly import: the page hands the dict to `Plotly.newPlot`
and the tests read it (and validate it with `plotly.graph_objects`) without a browser.

Long series are thinned by keeping each bucket's extremes (M4) rather than by sampling, so a spike in a
100,000-point loss curve is still on the chart (MLflow's sampling loses them).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

MAX_CHART_POINTS = 2000  # points sent to the browser per series, after min/max thinning

# One accent for every metric line: the charts sit next to status badges and should not
# compete with their colours.
LINE_COLOUR = "#4f46e5"
GRID_COLOUR = "#eef0f3"
TEXT_COLOUR = "#5b6474"
FONT = 'system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif'

Figure = dict[str, Any]


def finite_or_none(value: float) -> float | None:
    # NaN and infinities are stored as such, but JSON (and so JSON.parse) has no spelling for
    # them: plotly draws None as a gap, which is what a diverged step should look like.
    return value if math.isfinite(value) else None


def thin_min_max(
    points: list[tuple[int, float]], max_points: int = MAX_CHART_POINTS
) -> list[tuple[int, float]]:
    """At most `max_points` points that draw the same picture (M4 aggregation).

    Points are (step, value) in step order. Each bucket of consecutive points keeps its
    first, lowest, highest and last point, in step order, so the drawn line still reaches
    every spike and dip and spans the whole range of steps. Non-finite values are left out
    of the comparison but kept (as gaps).
    """
    if max_points < 4:
        raise ValueError("max_points must be at least 4")
    if len(points) <= max_points:
        return points
    buckets = max_points // 4
    size = len(points) / buckets
    thinned: list[tuple[int, float]] = []
    for index in range(buckets):
        bucket = points[int(index * size) : int((index + 1) * size)]
        if not bucket:
            continue
        kept = {bucket[0], bucket[-1]}
        finite = [point for point in bucket if math.isfinite(point[1])]
        if finite:
            kept.add(min(finite, key=lambda point: point[1]))
            kept.add(max(finite, key=lambda point: point[1]))
        thinned.extend(sorted(kept, key=lambda point: point[0]))
    return thinned


def metric_figure(
    name: str, points: Iterable[tuple[int, float]], *, max_points: int = MAX_CHART_POINTS
) -> Figure:
    """A line chart of one metric over steps.

    `points` are (step, value) pairs in step order, as
    `metric_history(...).values_list("step", "value")` returns them.
    """
    series = thin_min_max(list(points), max_points)
    steps = [step for step, _ in series]
    values = [finite_or_none(value) for _, value in series]
    axis = {
        "gridcolor": GRID_COLOUR,
        "zeroline": False,
        "linecolor": "#cfd4dc",
        "ticks": "outside",
        "tickcolor": "#cfd4dc",
        "automargin": True,
    }
    return {
        "data": [
            {
                "type": "scatter",
                "mode": "lines+markers" if len(series) <= 50 else "lines",
                "name": name,
                "x": steps,
                "y": values,
                "line": {"color": LINE_COLOUR, "width": 2},
                "marker": {"color": LINE_COLOUR, "size": 5},
                "connectgaps": False,
                # The name is read from the trace, not spliced into the template, so a
                # metric called "%{y}" is shown as written.
                "hovertemplate": "step %{x}<br>%{fullData.name}: %{y:.6g}<extra></extra>",
            }
        ],
        "layout": {
            "height": 240,
            "margin": {"l": 48, "r": 12, "t": 8, "b": 36},
            "paper_bgcolor": "rgba(0,0,0,0)",
            "plot_bgcolor": "rgba(0,0,0,0)",
            "font": {"family": FONT, "size": 11, "color": TEXT_COLOUR},
            "showlegend": False,
            "hovermode": "x",
            "xaxis": {**axis, "title": {"text": "step"}, "rangemode": "tozero"},
            "yaxis": {**axis, "title": {"text": ""}},
            "annotations": []
            if series
            else [
                {
                    "text": "No values yet",
                    "showarrow": False,
                    "xref": "paper",
                    "yref": "paper",
                    "x": 0.5,
                    "y": 0.5,
                    "font": {"size": 13, "color": "#8a93a3"},
                }
            ],
        },
    }
