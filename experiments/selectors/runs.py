"""Reads of runs, always scoped to the reader's teams: one run, search, and the runs
table's keys and comparisons of the UI."""

from __future__ import annotations

from collections.abc import Sequence

from django.conf import settings
from django.db.models import F, Prefetch, QuerySet

from experiments import search
from experiments.models import Lifecycle, MetricSummary, Run, RunParam, RunTag
from experiments.selectors.common import (
    MAX_SEARCH_RESULTS,
    Page,
    User,
    ViewType,
    encode_token,
    int64,
    lifecycle_filter,
    page_offset,
)
from studio.accounts.models import Team
from studio.accounts.selectors import note_member_role, teams_for_user
from studio.errors import NotFound, ValidationError
from studio.query_limits import time_limited_queries


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
            ids.append(int64(value))
        except (TypeError, ValueError, OverflowError):
            raise ValidationError(
                f"experiment_ids: {value!r} is not an experiment id", field="experiment_ids"
            ) from None
    runs = runs_for_user(user, team=team).filter(experiment_id__in=ids, **lifecycle_filter(view))
    runs = search.apply_run_filter(runs, search.parse_filter(filter_string))
    runs = search.apply_run_order(runs, search.parse_order_by(list(order_by)))
    offset = page_offset(page_token)
    with time_limited_queries(settings.SEARCH_TIMEOUT_SECONDS, what="run search"):
        items = list(_with_details(runs)[offset : offset + max_results + 1])
    more = len(items) > max_results
    return Page(
        items[:max_results], encode_token({"offset": offset + max_results}) if more else None
    )


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
