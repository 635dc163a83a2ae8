"""The group page's chart: one metric across a group's versions, coloured by approval status.

Pure, like frontend/charts.py: (version, status, metrics) rows in, a plotly figure dict out.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from frontend.charts import FONT, GRID_COLOUR, TEXT_COLOUR, Figure

# Bar colours per approval status, the palette of the status badges (frontend/registry/display.py).
STATUS_BAR_COLOURS: dict[str, str] = {
    "PendingManualApproval": "#0891b2",
    "Approved": "#16a34a",
    "Rejected": "#dc2626",
}
OTHER_COLOUR = "#6b7280"


@dataclass(frozen=True)
class VersionMetrics:
    version: int
    approval_status: str
    metrics: Mapping[str, float]


def metric_names(versions: Iterable[VersionMetrics]) -> list[str]:
    """Every metric any version has, sorted: the columns of the table and the chart's choices."""
    return sorted({name for version in versions for name in version.metrics})


def versions_metric_figure(versions: Sequence[VersionMetrics], metric: str) -> Figure:
    """A bar per version (oldest on the left) with its value of `metric`; versions without
    the metric are left out, and a chart with none says so."""
    shown = sorted(
        (
            v
            for v in versions
            if isinstance(v.metrics.get(metric), int | float) and math.isfinite(v.metrics[metric])
        ),
        key=lambda v: v.version,
    )
    axis = {
        "gridcolor": GRID_COLOUR,
        "zeroline": False,
        "linecolor": "#cfd4dc",
        "automargin": True,
    }
    return {
        "data": [
            {
                "type": "bar",
                "name": metric,
                "x": [f"v{v.version}" for v in shown],
                "y": [float(v.metrics[metric]) for v in shown],
                "text": [v.approval_status for v in shown],
                "marker": {
                    "color": [
                        STATUS_BAR_COLOURS.get(v.approval_status, OTHER_COLOUR) for v in shown
                    ]
                },
                # The metric's name comes from the trace, never spliced into the template.
                "hovertemplate": "%{x}<br>%{fullData.name}: %{y:.6g}<br>%{text}<extra></extra>",
                "textposition": "none",
            }
        ],
        "layout": {
            "height": 260,
            "margin": {"l": 52, "r": 12, "t": 8, "b": 36},
            "paper_bgcolor": "rgba(0,0,0,0)",
            "plot_bgcolor": "rgba(0,0,0,0)",
            "font": {"family": FONT, "size": 11, "color": TEXT_COLOUR},
            "showlegend": False,
            "bargap": 0.45,
            "xaxis": {**axis, "type": "category", "title": {"text": "version"}},
            "yaxis": {**axis, "title": {"text": metric}},
            "annotations": []
            if shown
            else [
                {
                    "text": f"No version has {metric}" if metric else "No metrics yet",
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
