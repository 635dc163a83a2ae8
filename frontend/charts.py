"""Chart figures for the UI: selector data in, a plotly figure dict out.

Pure functions, no Django and no plotly import: the page hands the dict to `Plotly.newPlot`
and the tests read it (and validate it with `plotly.graph_objects`) without a browser.

Long series are thinned by keeping each bucket's extremes (M4) rather than by sampling, so a spike in a
100,000-point loss curve is still on the chart (MLflow's sampling loses them).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

MAX_CHART_POINTS = 2000  # points sent to the browser per series, after min/max thinning

# One accent for every metric line: the charts sit next to status badges and should not
# compete with their colours.
LINE_COLOUR = "#4f46e5"
GRID_COLOUR = "#eef0f3"
TEXT_COLOUR = "#5b6474"
FONT = 'system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif'

Figure = dict[str, Any]


def _finite_or_none(value: float) -> float | None:
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
    values = [_finite_or_none(value) for _, value in series]
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


# --- endpoint traffic --------------------------------------------------------------------
#
# From `endpoints.selectors.endpoint_traffic`: {"since", "bucket_seconds", "variants":
# {variant: [{"at", "count", "errors_4xx", "errors_5xx", "p50_ms", "p90_ms", "p99_ms", ...}]}},
# buckets without traffic left out. Each variant has a colour; what is measured is told by the
# line's dash, so a chart with three variants and three kinds of line stays readable.

VARIANT_COLOURS = ("#4f46e5", "#0891b2", "#c026d3", "#ea580c", "#16a34a", "#64748b")
TRAFFIC_SERIES: tuple[tuple[str, str, str], ...] = (
    ("count", "invocations", "solid"),
    ("errors_4xx", "4xx", "dot"),
    ("errors_5xx", "5xx", "dash"),
)
LATENCY_SERIES: tuple[tuple[str, str, str], ...] = (
    ("p50_ms", "p50", "solid"),
    ("p90_ms", "p90", "dash"),
    ("p99_ms", "p99", "dot"),
)


def _bucket_grid(traffic: dict[str, Any], until: datetime | None) -> list[int]:
    """Every bucket start (epoch seconds) from the window's first bucket to `until` (or the
    last bucket with traffic), so that a minute without requests is drawn as 0, not skipped."""
    size = int(traffic["bucket_seconds"])
    seen = [
        int(datetime.fromisoformat(point["at"]).timestamp())
        for points in traffic["variants"].values()
        for point in points
    ]
    start = int(datetime.fromisoformat(traffic["since"]).timestamp())
    end = int(until.timestamp()) if until is not None else max(seen, default=start)
    first, last = start - start % size, end - end % size
    grid = list(range(first, last + 1, size))
    return sorted(set(grid).union(seen))


def _iso(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, tz=UTC).isoformat()


def _traffic_figure(
    traffic: dict[str, Any],
    series: tuple[tuple[str, str, str], ...],
    *,
    until: datetime | None,
    missing_as_zero: bool,
    y_title: str,
    hover_format: str,
) -> Figure:
    grid = _bucket_grid(traffic, until)
    x = [_iso(epoch) for epoch in grid]
    data = []
    for index, (variant, points) in enumerate(sorted(traffic["variants"].items())):
        colour = VARIANT_COLOURS[index % len(VARIANT_COLOURS)]
        # Requests refused before a variant was chosen (413, 503...) are counted under "".
        label_prefix = variant or "(no variant)"
        by_bucket = {int(datetime.fromisoformat(p["at"]).timestamp()): p for p in points}
        for key, label, dash in series:
            values: list[float | None] = []
            for epoch in grid:
                point = by_bucket.get(epoch)
                value = point.get(key) if point is not None else None
                if value is None and missing_as_zero:
                    value = 0
                values.append(
                    _finite_or_none(float(value)) if isinstance(value, int | float) else None
                )
            data.append(
                {
                    "type": "scatter",
                    "mode": "lines+markers" if len(grid) <= 30 else "lines",
                    "name": f"{label_prefix} {label}",
                    "legendgroup": label_prefix,
                    "x": x,
                    "y": values,
                    "line": {"color": colour, "width": 2 if dash == "solid" else 1.5, "dash": dash},
                    "marker": {"color": colour, "size": 4},
                    "connectgaps": False,
                    # Variant names come from the trace, never spliced into the template.
                    "hovertemplate": f"%{{fullData.name}}: %{{y:{hover_format}}}<extra></extra>",
                }
            )
    axis = {
        "gridcolor": GRID_COLOUR,
        "zeroline": False,
        "linecolor": "#cfd4dc",
        "automargin": True,
    }
    has_traffic = any(traffic["variants"].values())
    return {
        "data": data,
        "layout": {
            "height": 260,
            "margin": {"l": 52, "r": 12, "t": 8, "b": 36},
            "paper_bgcolor": "rgba(0,0,0,0)",
            "plot_bgcolor": "rgba(0,0,0,0)",
            "font": {"family": FONT, "size": 11, "color": TEXT_COLOUR},
            "showlegend": True,
            "legend": {"orientation": "h", "y": -0.22},
            "hovermode": "x unified",
            "xaxis": {**axis, "type": "date"},
            "yaxis": {**axis, "title": {"text": y_title}, "rangemode": "tozero"},
            "annotations": []
            if has_traffic
            else [
                {
                    "text": "No invocations in this window",
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


def invocations_figure(traffic: dict[str, Any], *, until: datetime | None = None) -> Figure:
    """Invocations, 4xx and 5xx answers per variant and time bucket; a bucket without
    traffic counts 0."""
    return _traffic_figure(
        traffic,
        TRAFFIC_SERIES,
        until=until,
        missing_as_zero=True,
        y_title="requests per bucket",
        hover_format=",d",
    )


def latency_figure(traffic: dict[str, Any], *, until: datetime | None = None) -> Figure:
    """Latency percentiles (p50, p90, p99, in ms) per variant and time bucket; a bucket
    without traffic has no latency and is drawn as a gap."""
    return _traffic_figure(
        traffic,
        LATENCY_SERIES,
        until=until,
        missing_as_zero=False,
        y_title="latency (ms)",
        hover_format=".3g",
    )
