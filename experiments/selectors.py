"""Reads of experiments, runs and metric series, always scoped to the reader's teams."""

from __future__ import annotations

import base64
import binascii
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db import connection
from django.db.models import Count, Max, Min, Prefetch, Q, QuerySet

from experiments import search
from experiments.models import (
    Experiment,
    ExperimentTag,
    Lifecycle,
    MetricPoint,
    MetricSummary,
    Run,
    RunParam,
    RunTag,
)
from studio.accounts.models import Team
from studio.accounts.selectors import teams_for_user
from studio.errors import NotFound, ValidationError

User = AbstractBaseUser | AnonymousUser

MAX_SEARCH_RESULTS = 50_000  # MLflow's limit for one page of search-runs
MAX_HISTORY_PAGE = 25_000  # MLflow client's page size for metric history
MAX_DOWNSAMPLED_POINTS = 10_000


class ViewType:
    ACTIVE_ONLY = "ACTIVE_ONLY"
    DELETED_ONLY = "DELETED_ONLY"
    ALL = "ALL"
    values = (ACTIVE_ONLY, DELETED_ONLY, ALL)


def lifecycle_filter(view: str) -> dict[str, str]:
    if view not in ViewType.values:
        raise ValidationError(
            f"view_type: expected one of {', '.join(ViewType.values)}", field="view_type"
        )
    if view == ViewType.ALL:
        return {}
    return {"lifecycle": Lifecycle.ACTIVE if view == ViewType.ACTIVE_ONLY else Lifecycle.DELETED}


# --- page tokens ----------------------------------------------------------------------------


def encode_token(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data, separators=(",", ":")).encode()).decode()


def decode_token(token: str | None) -> dict[str, Any]:
    if not token:
        return {}
    try:
        data = json.loads(base64.urlsafe_b64decode(token.encode()))
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise ValidationError(
            "page_token: not a token this server issued", field="page_token"
        ) from None
    if not isinstance(data, dict):
        raise ValidationError("page_token: not a token this server issued", field="page_token")
    return data


def _offset(token: str | None) -> int:
    offset = decode_token(token).get("offset", 0)
    if not isinstance(offset, int) or offset < 0:
        raise ValidationError("page_token: not a token this server issued", field="page_token")
    return offset


# --- experiments ----------------------------------------------------------------------------


def experiments_for_user(user: User, *, team: Team | None = None) -> QuerySet[Experiment]:
    experiments = Experiment.objects.filter(team__in=teams_for_user(user))
    if team is not None:
        experiments = experiments.filter(team=team)
    return experiments.select_related("team", "created_by").prefetch_related(
        Prefetch("tags", queryset=ExperimentTag.objects.order_by("key"))
    )


def experiment_for_user(
    user: User, experiment_id: int | str, *, team: Team | None = None
) -> Experiment:
    try:
        pk = int(experiment_id)
    except (TypeError, ValueError):
        raise NotFound(f"experiment {experiment_id!r} not found", field="experiment_id") from None
    experiment = experiments_for_user(user, team=team).filter(pk=pk).first()
    if experiment is None:
        raise NotFound(f"experiment {experiment_id} not found", field="experiment_id")
    return experiment


def experiment_by_name(user: User, *, team: Team, name: str) -> Experiment:
    experiment = experiments_for_user(user, team=team).filter(name=name).first()
    if experiment is None:
        raise NotFound(f"experiment {name!r} not found in team {team.slug}", field="name")
    return experiment


@dataclass(frozen=True)
class Page[T]:
    items: list[T]
    next_page_token: str | None


def experiments_search(
    user: User,
    *,
    team: Team,
    filter_string: str = "",
    order_by: Sequence[str] = (),
    view: str = ViewType.ACTIVE_ONLY,
    max_results: int = 1000,
    page_token: str | None = None,
) -> Page[Experiment]:
    if not 1 <= max_results <= MAX_SEARCH_RESULTS:
        raise ValidationError(
            f"max_results: between 1 and {MAX_SEARCH_RESULTS}", field="max_results"
        )
    experiments = experiments_for_user(user, team=team).filter(**lifecycle_filter(view))
    attributes = search.EXPERIMENT_ATTRIBUTES
    experiments = search.apply_experiment_filter(
        experiments, search.parse_filter(filter_string, attributes=attributes)
    )
    experiments = search.apply_experiment_order(
        experiments, search.parse_order_by(list(order_by), attributes=attributes)
    )
    offset = _offset(page_token)
    items = list(experiments[offset : offset + max_results + 1])
    more = len(items) > max_results
    return Page(
        items[:max_results], encode_token({"offset": offset + max_results}) if more else None
    )


# --- runs -----------------------------------------------------------------------------------


def _with_details(runs: QuerySet[Run]) -> QuerySet[Run]:
    """Everything a run's representation shows, in a fixed number of queries for any page."""
    return runs.select_related("experiment__team", "created_by", "job").prefetch_related(
        Prefetch("params", queryset=RunParam.objects.order_by("key")),
        Prefetch("tags", queryset=RunTag.objects.order_by("key")),
        Prefetch("metric_summaries", queryset=MetricSummary.objects.order_by("key")),
    )


def runs_for_user(user: User, *, team: Team | None = None) -> QuerySet[Run]:
    runs = Run.objects.filter(experiment__team__in=teams_for_user(user))
    if team is not None:
        runs = runs.filter(experiment__team=team)
    return runs


def run_for_user(user: User, run_id: str, *, team: Team | None = None, details: bool = True) -> Run:
    """The run by its public id (32 hex digits); another team's run is not found. Without
    `details`, one query and no params, tags or metrics (the logging path)."""
    if not isinstance(run_id, str) or not run_id:
        raise NotFound("run not found", field="run_id")
    runs = runs_for_user(user, team=team)
    runs = _with_details(runs) if details else runs.select_related("experiment__team")
    run = runs.filter(run_uuid=run_id).first()
    if run is None:
        raise NotFound(f"run {run_id} not found", field="run_id")
    return run


def runs_search(
    user: User,
    *,
    experiment_ids: Sequence[int | str],
    team: Team | None = None,
    filter_string: str = "",
    order_by: Sequence[str] = (),
    view: str = ViewType.ACTIVE_ONLY,
    max_results: int = 1000,
    page_token: str | None = None,
) -> Page[Run]:
    """Runs of the given experiments matching the filter, in the given order, one page at a
    time. Experiments the user cannot see are ignored, as in MLflow."""
    if not 1 <= max_results <= MAX_SEARCH_RESULTS:
        raise ValidationError(
            f"max_results: between 1 and {MAX_SEARCH_RESULTS}", field="max_results"
        )
    ids = []
    for value in experiment_ids:
        try:
            ids.append(int(value))
        except (TypeError, ValueError):
            raise ValidationError(
                f"experiment_ids: {value!r} is not an experiment id", field="experiment_ids"
            ) from None
    runs = runs_for_user(user, team=team).filter(experiment_id__in=ids, **lifecycle_filter(view))
    runs = search.apply_run_filter(runs, search.parse_filter(filter_string))
    runs = search.apply_run_order(runs, search.parse_order_by(list(order_by)))
    offset = _offset(page_token)
    items = list(_with_details(runs)[offset : offset + max_results + 1])
    more = len(items) > max_results
    return Page(
        items[:max_results], encode_token({"offset": offset + max_results}) if more else None
    )


# --- metrics --------------------------------------------------------------------------------


def metric_summaries(*, run_id: int) -> QuerySet[MetricSummary]:
    return MetricSummary.objects.filter(run_id=run_id).order_by("key")


def metric_history(*, run_id: int, key: str) -> QuerySet[MetricPoint]:
    """Every point of one metric in step order (ties by time, then by arrival)."""
    return MetricPoint.objects.filter(run_id=run_id, key=key).order_by("step", "timestamp", "id")


def metric_series(*, run_id: int, key: str) -> list[tuple[int, float]]:
    """(step, value) pairs of one metric in step order, NaN as NaN (charts of a job's log
    metrics; long series go through `metric_history_downsampled`)."""
    return [
        (step, math.nan if value is None else value)
        for step, value in metric_history(run_id=run_id, key=key).values_list("step", "value")
    ]


@dataclass(frozen=True)
class HistoryPoint:
    step: int
    value: float | None  # None is NaN
    timestamp: int


def metric_history_page(
    *,
    run_id: int,
    key: str,
    max_results: int | None = None,
    page_token: str | None = None,
    step_min: int | None = None,
    step_max: int | None = None,
) -> Page[HistoryPoint]:
    """Points in step order, a page at a time. Tokens are keyset cursors (the last point's
    step, timestamp and id), so each page is an index range scan, however deep."""
    limit = MAX_HISTORY_PAGE if max_results is None else max_results
    if not 1 <= limit <= MAX_HISTORY_PAGE * 4:
        raise ValidationError(
            f"max_results: between 1 and {MAX_HISTORY_PAGE * 4}", field="max_results"
        )
    points = MetricPoint.objects.filter(run_id=run_id, key=key)
    if step_min is not None:
        points = points.filter(step__gte=step_min)
    if step_max is not None:
        points = points.filter(step__lte=step_max)
    after = decode_token(page_token).get("after")
    if after is not None:
        try:
            step, timestamp, pk = (int(v) for v in after)
        except (TypeError, ValueError):
            raise ValidationError(
                "page_token: not a token this server issued", field="page_token"
            ) from None
        points = points.filter(
            Q(step__gt=step)
            | Q(step=step, timestamp__gt=timestamp)
            | Q(step=step, timestamp=timestamp, id__gt=pk)
        )
    rows = list(
        points.order_by("step", "timestamp", "id").values_list("step", "value", "timestamp", "id")[
            : limit + 1
        ]
    )
    more = len(rows) > limit
    rows = rows[:limit]
    token = encode_token({"after": [rows[-1][0], rows[-1][2], rows[-1][3]]}) if more else None
    return Page([HistoryPoint(s, v, t) for s, v, t, _ in rows], token)


def metric_history_downsampled(
    *,
    run_id: int,
    key: str,
    max_points: int,
    step_min: int | None = None,
    step_max: int | None = None,
) -> tuple[list[HistoryPoint], bool]:
    """At most about `max_points` points of the series, keeping each bucket's minimum and
    maximum (so a spike survives however long the series), and whether it was sampled.

    The step range is cut into `max_points // 2` equal buckets; from each, the points with
    the smallest and the largest value are kept (both in step order). A series that fits is
    returned whole. NaN points are left out of a sampled series (a full-resolution read, or
    zooming in until the range fits, shows them)."""
    if not 2 <= max_points <= MAX_DOWNSAMPLED_POINTS:
        raise ValidationError(
            f"max_points: between 2 and {MAX_DOWNSAMPLED_POINTS}", field="max_points"
        )
    points = MetricPoint.objects.filter(run_id=run_id, key=key)
    if step_min is not None:
        points = points.filter(step__gte=step_min)
    if step_max is not None:
        points = points.filter(step__lte=step_max)
    extent = points.aggregate(n=Count("id"), lo=Min("step"), hi=Max("step"))
    if extent["n"] <= max_points:
        rows = points.order_by("step", "timestamp", "id").values_list("step", "value", "timestamp")
        return [HistoryPoint(s, v, t) for s, v, t in rows], False
    lo, hi = int(extent["lo"]), int(extent["hi"])
    buckets = max(1, max_points // 2)
    width = max(1, -(-(hi - lo + 1) // buckets))  # ceiling division
    extremes = _bucket_extremes(run_id=run_id, key=key, lo=lo, hi=hi, width=width)
    kept = sorted(set(extremes), key=lambda row: (row[1], row[2]))
    return [HistoryPoint(int(s), float(v), int(t)) for v, s, t in kept], True


def _bucket_extremes(
    *, run_id: int, key: str, lo: int, hi: int, width: int
) -> list[tuple[float, int, int]]:
    """(value, step, timestamp) of each bucket's lowest and highest point, in one pass of
    aggregation per extreme (no sort of the series). Buckets are `(step - lo) / width`:
    integer division of non-negative integers, the same on both databases."""
    table = connection.ops.quote_name(MetricPoint._meta.db_table)
    quote = connection.ops.quote_name
    where = (
        f"FROM {table} WHERE run_id = %s AND {quote('key')} = %s AND value IS NOT NULL "
        "AND step BETWEEN %s AND %s GROUP BY (step - %s) / %s"
    )
    params: list[int | str] = [run_id, key, lo, hi, lo, width]
    if connection.vendor == "postgresql":
        # min/max of an array compare element by element: the lowest value, then the lowest
        # step. Steps and millisecond timestamps are exact in a double below 2**53.
        triple = f"ARRAY[value, step::float8, {quote('timestamp')}::float8]"
        sql = f"SELECT MIN({triple}), MAX({triple}) {where}"  # noqa: S608 - identifiers are the model's own, quoted; values are parameters
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            return [(float(v), int(s), int(t)) for pair in cursor.fetchall() for v, s, t in pair]
    # SQLite: with a single min() or max() in a query, bare columns come from that row.
    sql = (
        f"SELECT MIN(value), step, {quote('timestamp')} {where} UNION ALL "  # noqa: S608 - as above
        f"SELECT MAX(value), step, {quote('timestamp')} {where}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params + params)
        return [(float(v), int(s), int(t)) for v, s, t in cursor.fetchall()]
