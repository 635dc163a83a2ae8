"""Reads of metric series: summaries, full histories a page at a time (by step or by time),
and downsampled histories for charts."""

from __future__ import annotations

import math
from enum import StrEnum
from typing import Any

from django.db import connection
from django.db.models import Exists, Q, QuerySet, Value
from django.db.models.functions import Coalesce

from experiments.downsampling import HistoryPoint as HistoryPoint
from experiments.downsampling import MetricBucket as MetricBucket
from experiments.downsampling import SampledHistory, sampled_history
from experiments.models import MetricPoint, MetricSummary
from experiments.selectors.common import Page, bad_token, decode_token, encode_token, int64
from studio.errors import ValidationError

MAX_HISTORY_PAGE = 25_000  # MLflow client's page size for metric history
MAX_DOWNSAMPLED_POINTS = 10_000


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
        raise bad_token()  # a token of MLflow's route
    if after is not None:
        try:
            step, timestamp, pk = (int64(v) for v in after)
        except (TypeError, ValueError, OverflowError):
            raise bad_token() from None
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
        raise bad_token()  # a token of the native API
    cursor = None
    if after is not None:
        try:
            timestamp, step, sort_value, pk = after
            cursor = (int64(timestamp), int64(step), float(sort_value), int64(pk))
        except (TypeError, ValueError, OverflowError):
            raise bad_token() from None
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
