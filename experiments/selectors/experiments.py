"""Reads of experiments, always scoped to the reader's teams."""

from __future__ import annotations

from collections.abc import Sequence

from django.conf import settings
from django.db.models import Count, OuterRef, Prefetch, QuerySet, Subquery
from django.db.models.functions import Coalesce

from experiments import search
from experiments.models import Experiment, ExperimentTag, Lifecycle, Run, RunStatus
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
from studio.accounts.selectors import teams_for_user
from studio.errors import NotFound, ValidationError
from studio.query_limits import time_limited_queries


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
        pk = int64(experiment_id)
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
    offset = page_offset(page_token)
    with time_limited_queries(settings.SEARCH_TIMEOUT_SECONDS, what="experiment search"):
        items = list(experiments[offset : offset + max_results + 1])
    more = len(items) > max_results
    return Page(
        items[:max_results], encode_token({"offset": offset + max_results}) if more else None
    )


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
