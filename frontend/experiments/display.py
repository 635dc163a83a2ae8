"""How runs look in the UI: status colours, metric values, the runs table's columns, and the
compare view's side-by-side rows. Pure functions of loaded runs; no queries.

Metric values are shown as MLflow shows them: NaN and infinities spelled out, never hidden.
A run without a key shows "—" (absent is not the same as NaN).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from experiments.models import Run, RunStatus
from frontend.jobs.display import format_duration

# Named as the stylesheet's `status-<colour>` (frontend/jobs/display.py's palette).
STATUS_COLOURS: dict[str, str] = {
    RunStatus.RUNNING: "blue",
    RunStatus.FINISHED: "green",
    RunStatus.FAILED: "red",
    RunStatus.KILLED: "gray",
}
STATUS_LABELS: dict[str, str] = {value: str(label) for value, label in RunStatus.choices}
# One colour per run in overlaid charts and the scatter (the first is the single-run colour).
RUN_COLOURS = (
    "#4f46e5",
    "#0891b2",
    "#c026d3",
    "#ea580c",
    "#16a34a",
    "#64748b",
    "#dc2626",
    "#ca8a04",
    "#0d9488",
    "#9333ea",
)
ABSENT = "—"


def status_colour(status: str) -> str:
    return STATUS_COLOURS.get(status, "gray")


def run_colour(index: int) -> str:
    return RUN_COLOURS[index % len(RUN_COLOURS)]


def format_metric(value: float | None) -> str:
    """A metric value as text: 6 significant digits; NULL (stored NaN) is "NaN"."""
    if value is None or math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return f"{value:.6g}"


def ms_to_datetime(ms: int | None) -> datetime | None:
    return None if ms is None else datetime.fromtimestamp(ms / 1000, tz=UTC)


def run_duration(run: Run, now_ms: int) -> str:
    end = run.end_time if run.end_time is not None else now_ms
    return format_duration(timedelta(milliseconds=max(0, end - run.start_time)))


# --- the runs table ------------------------------------------------------------------------

_PLAIN_KEY = re.compile(r"^[\w./:\-]+$")


def search_name(entity: str, key: str) -> str:
    """`metrics.acc`, or ``metrics.`val loss` `` for keys the search syntax needs quoted."""
    return f"{entity}.{key}" if _PLAIN_KEY.match(key) else f"{entity}.`{key}`"


@dataclass(frozen=True)
class Column:
    entity: str  # attributes | params | metrics
    key: str
    label: str
    sortable: bool = True

    @property
    def name(self) -> str:
        return search_name(self.entity, self.key)


ATTRIBUTE_COLUMNS: tuple[Column, ...] = (
    Column("attributes", "run_name", "Run"),
    Column("attributes", "status", "Status"),
    Column("attributes", "start_time", "Started (UTC)"),
    Column("attributes", "duration", "Duration", sortable=False),
    Column("attributes", "user_id", "User"),
)
DEFAULT_KEY_COLUMNS = 8  # params and metrics each, when none are chosen


@dataclass(frozen=True)
class HeaderCell:
    column: Column
    href: str | None  # sorting link; None for columns that do not sort
    direction: str  # "asc", "desc" or "" (not the current order)


@dataclass(frozen=True)
class MetricCell:
    value: str
    title: str  # step, min, max and count, as a tooltip ("" when the run lacks the key)


@dataclass(frozen=True)
class RunRow:
    run: Run
    colour: str
    started: datetime | None
    duration: str
    params: list[str]
    metrics: list[MetricCell]


def key_columns(
    *,
    available_params: Sequence[str],
    available_metrics: Sequence[str],
    chosen_params: Sequence[str] | None,
    chosen_metrics: Sequence[str] | None,
    referenced: Iterable[tuple[str, str]] = (),
) -> tuple[list[str], list[str]]:
    """The param and metric columns to show: those chosen (or the first few available),
    plus any key the filter or the ordering names, so what narrows the table is visible."""
    params = list(
        chosen_params if chosen_params is not None else available_params[:DEFAULT_KEY_COLUMNS]
    )
    metrics = list(
        chosen_metrics if chosen_metrics is not None else available_metrics[:DEFAULT_KEY_COLUMNS]
    )
    for entity, key in referenced:
        target = params if entity == "params" else metrics if entity == "metrics" else None
        if target is not None and key not in target:
            target.append(key)
    return params, metrics


def run_rows(
    runs: Iterable[Run], params: Sequence[str], metrics: Sequence[str], now_ms: int
) -> list[RunRow]:
    rows = []
    for run in runs:
        values = {param.key: param.value for param in run.params.all()}
        summaries = {summary.key: summary for summary in run.metric_summaries.all()}
        metric_cells = []
        for key in metrics:
            summary = summaries.get(key)
            if summary is None:
                metric_cells.append(MetricCell(ABSENT, ""))
                continue
            title = (
                f"step {summary.last_step} · min {format_metric(summary.min_value)}"
                f" · max {format_metric(summary.max_value)} · {summary.count} points"
            )
            metric_cells.append(MetricCell(format_metric(summary.last_value), title))
        rows.append(
            RunRow(
                run=run,
                colour=status_colour(run.status),
                started=ms_to_datetime(run.start_time),
                duration=run_duration(run, now_ms),
                params=[values.get(key, ABSENT) for key in params],
                metrics=metric_cells,
            )
        )
    return rows


# --- the compare view ----------------------------------------------------------------------


@dataclass(frozen=True)
class CompareCell:
    text: str
    status: str = ""  # a run status, drawn as a badge (the Status row)
    colour: str = ""


@dataclass(frozen=True)
class CompareRow:
    section: str  # "attributes" | "params" | "metrics"
    label: str
    cells: list[CompareCell]
    differs: bool


def _row(section: str, label: str, texts: Sequence[str], raw: Sequence[object]) -> CompareRow:
    return CompareRow(section, label, [CompareCell(text) for text in texts], len(set(raw)) > 1)


def compare_rows(runs: Sequence[Run], now_ms: int) -> list[CompareRow]:
    """Attributes, then every param and every metric (latest value) of any of the runs,
    side by side; a row differs when any two runs disagree (absent counts as a value)."""
    experiments = [run.experiment.name for run in runs]
    durations = [run_duration(run, now_ms) for run in runs]
    users = [run.created_by.get_username() if run.created_by else ABSENT for run in runs]
    statuses = [run.status for run in runs]
    rows = [
        _row("attributes", "Experiment", experiments, experiments),
        CompareRow(
            "attributes",
            "Status",
            [
                CompareCell(STATUS_LABELS.get(status, status), status, status_colour(status))
                for status in statuses
            ],
            len(set(statuses)) > 1,
        ),
        _row("attributes", "Duration", durations, durations),
        _row("attributes", "User", users, users),
    ]
    params = [{p.key: p.value for p in run.params.all()} for run in runs]
    for key in sorted({key for values in params for key in values}):
        raw = [values.get(key) for values in params]
        rows.append(_row("params", key, [ABSENT if v is None else v for v in raw], raw))
    metrics = [{m.key: m for m in run.metric_summaries.all()} for run in runs]
    for key in sorted({key for values in metrics for key in values}):
        summaries = [values.get(key) for values in metrics]
        # Compared as stored, not as shown: 0.9000001 and 0.9000002 differ.
        raw_values: list[object] = [
            "absent" if s is None else "NaN" if s.last_value is None else s.last_value
            for s in summaries
        ]
        texts = [ABSENT if s is None else format_metric(s.last_value) for s in summaries]
        rows.append(_row("metrics", key, texts, raw_values))
    return rows
