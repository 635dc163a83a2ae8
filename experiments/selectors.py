"""Reads of experiments, runs and metric series, always scoped to the reader's teams."""

from __future__ import annotations

import base64
import binascii
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db import connection
from django.db.models import Count, Exists, F, OuterRef, Prefetch, Q, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce

from experiments import search
from experiments.downsampling import HistoryPoint as HistoryPoint
from experiments.downsampling import MetricBucket as MetricBucket
from experiments.downsampling import SampledHistory, sampled_history
from experiments.models import (
    Experiment,
    ExperimentTag,
    Lifecycle,
    MetricPoint,
    MetricSummary,
    Run,
    RunParam,
    RunStatus,
    RunTag,
)
from experiments.validation import INT64_MAX, INT64_MIN
from studio.accounts.models import Team
from studio.accounts.selectors import note_member_role, teams_for_user
from studio.errors import NotFound, ValidationError
from studio.query_limits import time_limited_queries

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
    except (ValueError, binascii.Error, UnicodeDecodeError, RecursionError):
        raise ValidationError(
            "page_token: not a token this server issued", field="page_token"
        ) from None
    if not isinstance(data, dict):
        raise ValidationError("page_token: not a token this server issued", field="page_token")
    return data


# Past any table's size, and far from the database's integer limit when a page is added.
MAX_OFFSET = 2**53


def _offset(token: str | None) -> int:
    offset = decode_token(token).get("offset", 0)
    if not isinstance(offset, int) or not 0 <= offset <= MAX_OFFSET:
        raise ValidationError("page_token: not a token this server issued", field="page_token")
    return offset


def _int64(value: Any) -> int:
    """An id or a cursor's integer: within the columns' 64 bits (a database refuses more)."""
    number = int(value)
    if not INT64_MIN <= number <= INT64_MAX:
        raise ValueError(number)
    return number


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
        pk = _int64(experiment_id)
    except (TypeError, ValueError, OverflowError):
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
    with time_limited_queries(settings.SEARCH_TIMEOUT_SECONDS, what="experiment search"):
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
    if team is not None:
        # One team: its membership row joined (one query, no subquery to build).
        if not user.is_authenticated:
            return Run.objects.none()
        return Run.objects.filter(
            experiment__team=team, experiment__team__memberships__user_id=user.pk
        )
    return Run.objects.filter(experiment__team__in=teams_for_user(user))


def run_for_user(user: User, run_id: str, *, team: Team | None = None, details: bool = True) -> Run:
    """The run by its public id (32 hex digits); another team's run is not found. Without
    `details`, one query and no params, tags or metrics (the logging path)."""
    if not isinstance(run_id, str) or not run_id:
        raise NotFound("run not found", field="run_id")
    runs = runs_for_user(user, team=team)
    runs = _with_details(runs) if details else runs.select_related("experiment__team")
    if team is not None:
        # The membership row is joined (runs_for_user): its role comes along, for the
        # permission check a write makes next.
        runs = runs.annotate(member_role=F("experiment__team__memberships__role"))
    # The id is unique: no ORDER BY to build or run (as `first()` or the default order would).
    run = next(iter(runs.filter(run_uuid=run_id).order_by()[:1]), None)
    if run is None:
        raise NotFound(f"run {run_id} not found", field="run_id")
    if team is not None:
        note_member_role(run.experiment.team, user.pk, getattr(run, "member_role", None))
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
            ids.append(_int64(value))
        except (TypeError, ValueError, OverflowError):
            raise ValidationError(
                f"experiment_ids: {value!r} is not an experiment id", field="experiment_ids"
            ) from None
    runs = runs_for_user(user, team=team).filter(experiment_id__in=ids, **lifecycle_filter(view))
    runs = search.apply_run_filter(runs, search.parse_filter(filter_string))
    runs = search.apply_run_order(runs, search.parse_order_by(list(order_by)))
    offset = _offset(page_token)
    with time_limited_queries(settings.SEARCH_TIMEOUT_SECONDS, what="run search"):
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


HistoryRow = tuple[int, float | None, int]  # step, value (None is NaN), timestamp


class HistoryOrder(StrEnum):
    """The orders history pages come in.

    STEP: step, then time, then arrival: what charts and the native API want. TIME: what
    MLflow's server answers `metrics/get-history` with (`SqlAlchemyStore.get_metric_history`
    orders by timestamp, step, value; it stores NaN as 0), then arrival, so that pages never
    split ties differently. The two agree whenever steps and timestamps grow together; they
    differ for a series whose steps start again (a resumed training loop) or were logged out
    of order.

    Only STEP has an index, (run, key, step): a second one on time slowed every write (see
    docs/experiments.md). A TIME page is read through the step index when the series'
    summary says the two orders agree (`MetricSummary.in_step_order`, kept by the write
    path: nearly every series); other series are sorted by the database, page by page."""

    STEP = "step"
    TIME = "time"


def _bad_token() -> ValidationError:
    return ValidationError("page_token: not a token this server issued", field="page_token")


def _past_in_step_order(
    points: QuerySet[MetricPoint], step: int, timestamp: int, pk: int
) -> QuerySet[MetricPoint]:
    """Points after (step, timestamp, id) in step order. `step >=` first: the index range
    starts at the cursor (the OR alone would make SQLite walk the series from its start on
    every page)."""
    return points.filter(step__gte=step).filter(
        Q(step__gt=step)
        | Q(step=step, timestamp__gt=timestamp)
        | Q(step=step, timestamp=timestamp, id__gt=pk)
    )


_Row = tuple[int, float | None, int, int]  # step, value, timestamp, id


def _rows(query: QuerySet[MetricPoint], limit: int) -> list[_Row]:
    """At most `limit + 1` rows (one more tells that a next page exists). The ORM builds the
    query; the rows are fetched as the driver's tuples (no per-row converters or model
    machinery: none of these columns needs one)."""
    rows = query.values_list("step", "value", "timestamp", "id")[: limit + 1]
    sql, params = rows.query.sql_with_params()
    with connection.cursor() as db:
        db.execute(sql, params)
        fetched: list[_Row] = db.fetchall()
    return fetched


def _step_page(points: QuerySet[MetricPoint], token: dict[str, Any], limit: int) -> list[_Row]:
    after = token.get("after")
    if token and after is None:
        raise _bad_token()  # a token of MLflow's route
    if after is not None:
        try:
            step, timestamp, pk = (_int64(v) for v in after)
        except (TypeError, ValueError, OverflowError):
            raise _bad_token() from None
        points = _past_in_step_order(points, step, timestamp, pk)
    return _rows(points.order_by("step", "timestamp", "id"), limit)


def _time_page(
    points: QuerySet[MetricPoint], token: dict[str, Any], limit: int, *, run_id: int, key: str
) -> list[_Row]:
    # A token holds its page's last point's time key (timestamp, step, value as sorted,
    # id) whichever way the page was read. That point is one of the series' points: while
    # the orders agree, the points after it in step order are the points after it in time
    # order, so a token carries on either way (the flag may be cleared between pages).
    after = token.get("after_time")
    if token and after is None:
        raise _bad_token()  # a token of the native API
    cursor = None
    if after is not None:
        try:
            timestamp, step, sort_value, pk = after
            cursor = (_int64(timestamp), _int64(step), float(sort_value), _int64(pk))
        except (TypeError, ValueError, OverflowError):
            raise _bad_token() from None
    # The flag is read in the very statement that reads the points (one snapshot): a batch
    # that clears it meanwhile cannot get this page read in step order.
    by_step = points.filter(
        Exists(MetricSummary.objects.filter(run_id=run_id, key=key, in_step_order=True))
    )
    if cursor is not None:
        timestamp, step, _, pk = cursor
        by_step = _past_in_step_order(by_step, step, timestamp, pk)
    rows = _rows(by_step.order_by("step", "timestamp", "id"), limit)
    if rows:
        return rows
    # No rows: the series is not in step order, or there is nothing to read (no such
    # series; a cursor with nothing past it, which no page of ours ends with). The database
    # sorts the series from the cursor on; MLflow's NaN (NULL here) sorts as the 0 it stores.
    points = points.alias(sort_value=Coalesce("value", Value(0.0)))
    if cursor is not None:
        timestamp, step, sort_value, pk = cursor
        points = points.filter(timestamp__gte=timestamp).filter(
            Q(timestamp__gt=timestamp)
            | Q(timestamp=timestamp, step__gt=step)
            | Q(timestamp=timestamp, step=step, sort_value__gt=sort_value)
            | Q(timestamp=timestamp, step=step, sort_value=sort_value, id__gt=pk)
        )
    return _rows(points.order_by("timestamp", "step", "sort_value", "id"), limit)


def metric_history_rows(
    *,
    run_id: int,
    key: str,
    max_results: int | None = None,
    page_token: str | None = None,
    step_min: int | None = None,
    step_max: int | None = None,
    order: HistoryOrder = HistoryOrder.STEP,
) -> Page[HistoryRow]:
    """Points in `order` (`HistoryOrder`), a page at a time, as plain (step, value,
    timestamp) tuples: the history APIs encode a page of 25,000 points without an object per
    point. Tokens are keyset cursors (the last point's sort key and id), so each page of a
    series in step order is an index range scan, however deep; a token only continues the
    order it came from."""
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
    token = decode_token(page_token)
    by_time = order == HistoryOrder.TIME
    if by_time:
        rows = _time_page(points, token, limit, run_id=run_id, key=key)
    else:
        rows = _step_page(points, token, limit)
    next_token = None
    if len(rows) > limit:
        step, value, timestamp, pk = rows[limit - 1]
        next_token = encode_token(
            {"after_time": [timestamp, step, 0.0 if value is None else value, pk]}
            if by_time
            else {"after": [step, timestamp, pk]}
        )
    return Page([(s, v, t) for s, v, t, _ in rows[:limit]], next_token)


def metric_history_page(
    *,
    run_id: int,
    key: str,
    max_results: int | None = None,
    page_token: str | None = None,
    step_min: int | None = None,
    step_max: int | None = None,
) -> Page[HistoryPoint]:
    """`metric_history_rows` as HistoryPoints."""
    page = metric_history_rows(
        run_id=run_id,
        key=key,
        max_results=max_results,
        page_token=page_token,
        step_min=step_min,
        step_max=step_max,
    )
    return Page([HistoryPoint(*row) for row in page.items], page.next_page_token)


def metric_history_sampled(
    *,
    run_id: int,
    key: str,
    max_points: int,
    step_min: int | None = None,
    step_max: int | None = None,
) -> SampledHistory:
    """The series over a step range for a chart `max_points` wide: all of its points when
    they fit, else `max_points // 2` buckets (step range, count, NaN count, lowest, highest
    and latest point each) and their lowest and highest points (so spikes survive however
    long the series). Read from the rollups in at most three queries, whatever the length
    (`experiments.downsampling`). NaN points are left out of a sampled series' points (a
    full-resolution read, or zooming in until the range fits, shows them)."""
    if not 2 <= max_points <= MAX_DOWNSAMPLED_POINTS:
        raise ValidationError(
            f"max_points: between 2 and {MAX_DOWNSAMPLED_POINTS}", field="max_points"
        )
    return sampled_history(
        run_id=run_id, key=key, max_points=max_points, step_min=step_min, step_max=step_max
    )


def metric_history_downsampled(
    *,
    run_id: int,
    key: str,
    max_points: int,
    step_min: int | None = None,
    step_max: int | None = None,
) -> tuple[list[HistoryPoint], bool]:
    """At most `max_points` points of the series, keeping each bucket's minimum and
    maximum, and whether it was sampled (`metric_history_sampled` without the buckets)."""
    sampled = metric_history_sampled(
        run_id=run_id, key=key, max_points=max_points, step_min=step_min, step_max=step_max
    )
    return sampled.points, sampled.sampled


# --- run tables and comparisons (the UI) ----------------------------------------------------

KEY_SAMPLE_RUNS = 1000  # the newest runs whose keys become a runs table's column choices
MAX_TABLE_KEYS = 500


def run_table_keys(*, experiment_id: int) -> tuple[list[str], list[str]]:
    """Param keys and metric keys of the experiment's newest KEY_SAMPLE_RUNS active runs,
    each sorted. Bounded however many runs the experiment has: an older run's rare key is
    still reachable by naming it (a filter, an ordering, a chosen column)."""
    recent = (
        Run.objects.filter(experiment_id=experiment_id, lifecycle=Lifecycle.ACTIVE)
        .order_by("-start_time")
        .values("pk")[:KEY_SAMPLE_RUNS]
    )
    params = (
        RunParam.objects.filter(run__in=recent)
        .order_by("key")
        .values_list("key", flat=True)
        .distinct()[:MAX_TABLE_KEYS]
    )
    metrics = (
        MetricSummary.objects.filter(run__in=recent)
        .order_by("key")
        .values_list("key", flat=True)
        .distinct()[:MAX_TABLE_KEYS]
    )
    return list(params), list(metrics)


def runs_by_ids(user: User, run_ids: Sequence[str]) -> list[Run]:
    """The runs (with params, tags and metric summaries) in the order asked; NotFound naming
    the first one the user cannot see (another team's is not found either)."""
    found = {
        run.run_uuid: run
        for run in _with_details(runs_for_user(user)).filter(run_uuid__in=list(run_ids))
    }
    for run_id in run_ids:
        if run_id not in found:
            raise NotFound(f"run {run_id} not found", field="run")
    return [found[run_id] for run_id in run_ids]


def experiments_with_activity(user: User, *, team: Team, view: str) -> list[Experiment]:
    """The team's experiments with `run_count`, `running_count` and `last_run_start` (ms,
    or None) annotated: one query, each count an index range of the experiment's runs."""
    runs = Run.objects.filter(experiment=OuterRef("pk"), lifecycle=Lifecycle.ACTIVE).order_by()
    counts = runs.values("experiment").annotate(n=Count("pk")).values("n")
    running = (
        runs.filter(status=RunStatus.RUNNING)
        .values("experiment")
        .annotate(n=Count("pk"))
        .values("n")
    )
    newest = runs.order_by("-start_time").values("start_time")[:1]
    return list(
        experiments_for_user(user, team=team)
        .filter(**lifecycle_filter(view))
        .annotate(
            run_count=Coalesce(Subquery(counts), 0),
            running_count=Coalesce(Subquery(running), 0),
            last_run_start=Subquery(newest),
        )
        .order_by("name")
    )
