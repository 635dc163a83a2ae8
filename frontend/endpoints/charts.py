"""The endpoint page's traffic charts: selector data in, plotly figure dicts out (pure
functions, like `frontend.charts`)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from frontend.charts import FONT, GRID_COLOUR, TEXT_COLOUR, Figure, finite_or_none

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
                    finite_or_none(float(value)) if isinstance(value, int | float) else None
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
