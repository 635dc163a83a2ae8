"""The experiments pages: the team's experiments (create, and the deleted ones to restore),
and an experiment's page: its runs table (attribute, param and metric columns, sorted and
filtered on the server with MLflow's search syntax, a page at a time; its deleted runs, to
restore from their pages, under `?view=deleted`), rename and delete.

Like every UI view: parse, call the experiments services and selectors, render. Service
errors become form errors or messages with the error's status code, never a 500.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.contrib import messages
from django.http import Http404, HttpResponse, QueryDict
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from experiments import search, selectors, services
from experiments.models import Experiment, Lifecycle
from experiments.services.common import now_ms
from frontend.access import AuthedRequest, allows
from frontend.experiments.display import (
    ATTRIBUTE_COLUMNS,
    Column,
    HeaderCell,
    key_columns,
    ms_to_datetime,
    run_rows,
)
from frontend.experiments.forms import ExperimentForm
from frontend.forms import add_service_error
from frontend.teams import current_team
from studio.accounts.roles import Action
from studio.errors import NotFound, StudioloError

RUNS_PAGE_SIZE = 50
MAX_CHOSEN_COLUMNS = 50  # params and metrics each
MAX_FILTER_LENGTH = 4000
MAX_COMPARE_RUNS = 20  # the compare view's limit, told to the runs table's script


def experiment_or_404(request: AuthedRequest, experiment_id: int) -> Experiment:
    try:
        return selectors.experiment_for_user(request.user, experiment_id)
    except NotFound as exc:  # another team's experiment is no different from none
        raise Http404(exc.message) from exc


# --- the list ------------------------------------------------------------------------------


def _list(
    request: AuthedRequest, *, form: ExperimentForm | None = None, status: int = 200
) -> HttpResponse:
    team = current_team(request)
    deleted = request.GET.get("view") == "deleted"
    rows: list[dict[str, Any]] = []
    if team is not None:
        view = selectors.ViewType.DELETED_ONLY if deleted else selectors.ViewType.ACTIVE_ONLY
        for experiment in selectors.experiments_with_activity(request.user, team=team, view=view):
            started = ms_to_datetime(experiment.last_run_start)  # type: ignore[attr-defined]
            rows.append(
                {
                    "experiment": experiment,
                    "last_activity": max(experiment.updated_at, started)
                    if started
                    else experiment.updated_at,
                }
            )
        rows.sort(key=lambda row: row["last_activity"], reverse=True)
    return render(
        request,
        "frontend/experiments/list.html",
        {
            "rows": rows,
            "deleted_view": deleted,
            "can_write": allows(request, team, Action.TRACK),
            "form": form or ExperimentForm(),
            "form_open": form is not None,
        },
        status=status,
    )


@require_GET
def experiment_list(request: AuthedRequest) -> HttpResponse:
    return _list(request)


@require_POST
def experiment_create_view(request: AuthedRequest) -> HttpResponse:
    team = current_team(request)
    if team is None:
        raise Http404("no team")
    form = ExperimentForm(request.POST)
    if not form.is_valid():
        return _list(request, form=form, status=400)
    try:
        experiment = services.experiment_create(
            team=team,
            name=form.cleaned_data["name"],
            description=form.cleaned_data["description"],
            actor=request.user,
        )
    except StudioloError as error:
        add_service_error(form, error)
        return _list(request, form=form, status=error.status)
    messages.success(request, f"Experiment “{experiment.name}” created.")
    return redirect("experiment-detail", experiment_id=experiment.pk)


# --- one experiment: the runs table --------------------------------------------------------


@dataclass(frozen=True)
class TableQuery:
    """What the runs table was asked for, from the query string."""

    filter: str
    order: str  # one order clause of the search syntax, or ""
    page_token: str
    params: list[str] | None  # None: not chosen, the defaults apply
    metrics: list[str] | None
    deleted: bool  # the experiment's deleted runs instead of its active ones

    @classmethod
    def parse(cls, query: QueryDict) -> TableQuery:
        chosen = query.get("cols") == "1"
        return cls(
            filter=query.get("filter", "").strip()[:MAX_FILTER_LENGTH],
            order=query.get("order", "").strip()[:MAX_FILTER_LENGTH],
            page_token=query.get("page", ""),
            params=query.getlist("param")[:MAX_CHOSEN_COLUMNS] if chosen else None,
            metrics=query.getlist("metric")[:MAX_CHOSEN_COLUMNS] if chosen else None,
            deleted=query.get("view") == "deleted",
        )


def _href(request: AuthedRequest, **changes: str | None) -> str:
    """This page's query string with `changes` applied (None removes) and back on page 1."""
    query = request.GET.copy()
    query.pop("page", None)
    for name, value in changes.items():
        query.pop(name, None)
        if value is not None:
            query[name] = value
    return f"?{query.urlencode()}" if query else request.path


def _page_href(request: AuthedRequest, token: str) -> str:
    query = request.GET.copy()
    query["page"] = token
    return f"?{query.urlencode()}"


def _header(request: AuthedRequest, column: Column, current: search.Order | None) -> HeaderCell:
    if not column.sortable:
        return HeaderCell(column, None, "")
    is_current = (
        current is not None and current.entity == column.entity and current.key == column.key
    )
    direction = ("asc" if current.ascending else "desc") if is_current and current else ""
    # A click sorts ascending, a second click on the same column descending.
    next_direction = "DESC" if direction == "asc" else "ASC"
    return HeaderCell(column, _href(request, order=f"{column.name} {next_direction}"), direction)


def _runs_table(request: AuthedRequest, experiment: Experiment) -> dict[str, Any]:
    query = TableQuery.parse(request.GET)
    available_params, available_metrics = selectors.run_table_keys(experiment_id=experiment.pk)
    error: StudioloError | None = None
    current_order: search.Order | None = None
    referenced: list[tuple[str, str]] = []
    runs: list[Any] = []
    next_token = None
    try:
        # Parsed here too (the selector parses again) to show what narrows the table.
        referenced += [(c.entity, c.key) for c in search.parse_filter(query.filter)]
        orders = search.parse_order_by([query.order]) if query.order else []
        current_order = orders[0] if orders else None
        referenced += [(o.entity, o.key) for o in orders]
        if experiment.lifecycle != Lifecycle.ACTIVE:
            view = selectors.ViewType.ALL  # its runs were deleted with it: show what comes back
        elif query.deleted:
            view = selectors.ViewType.DELETED_ONLY
        else:
            view = selectors.ViewType.ACTIVE_ONLY
        page = selectors.runs_search(
            request.user,
            experiment_ids=[experiment.pk],
            filter_string=query.filter,
            order_by=[query.order] if query.order else [],
            view=view,
            max_results=RUNS_PAGE_SIZE,
            page_token=query.page_token or None,
        )
        runs, next_token = page.items, page.next_page_token
    except StudioloError as exc:
        error = exc
    params, metrics = key_columns(
        available_params=available_params,
        available_metrics=available_metrics,
        chosen_params=query.params,
        chosen_metrics=query.metrics,
        referenced=referenced,
    )
    columns = [
        *ATTRIBUTE_COLUMNS,
        *(Column("params", key, key) for key in params),
        *(Column("metrics", key, key) for key in metrics),
    ]
    headers = [_header(request, column, current_order) for column in columns]
    attribute_count = len(ATTRIBUTE_COLUMNS)
    return {
        "query": query,
        "error": error,
        "rows": run_rows(runs, params, metrics, now_ms()),
        "attribute_headers": headers[:attribute_count],
        "param_headers": headers[attribute_count : attribute_count + len(params)],
        "metric_headers": headers[attribute_count + len(params) :],
        "shown_params": params,
        "shown_metrics": metrics,
        "available_params": sorted(set(available_params) | set(params)),
        "available_metrics": sorted(set(available_metrics) | set(metrics)),
        "next_href": _page_href(request, next_token) if next_token else None,
        "first_href": _href(request) if query.page_token else None,
        "clear_href": _href(request, filter=None),
        "runs_view_href": _href(request, view=None if query.deleted else "deleted"),
        "column_count": 1 + len(columns),
        "filter_keep": [
            (name, value)
            for name, values in request.GET.lists()
            if name in ("order", "cols", "param", "metric", "view")
            for value in values
        ],
        "columns_keep": [
            (name, value)
            for name, values in request.GET.lists()
            if name in ("filter", "order", "view")
            for value in values
        ],
    }


def _experiment_page(
    request: AuthedRequest,
    experiment: Experiment,
    *,
    form: ExperimentForm | None = None,
    status: int = 200,
) -> HttpResponse:
    table = _runs_table(request, experiment)
    if status == 200 and table["error"] is not None:
        status = table["error"].status
    return render(
        request,
        "frontend/experiments/detail.html",
        {
            "experiment": experiment,
            "deleted": experiment.lifecycle != Lifecycle.ACTIVE,
            "can_write": allows(request, experiment.team, Action.TRACK),
            "form": form or ExperimentForm.for_experiment(experiment),
            "form_open": form is not None,
            "max_compare": MAX_COMPARE_RUNS,
            **table,
        },
        status=status,
    )


@require_GET
def experiment_detail(request: AuthedRequest, experiment_id: int) -> HttpResponse:
    return _experiment_page(request, experiment_or_404(request, experiment_id))


@require_POST
def experiment_rename_view(request: AuthedRequest, experiment_id: int) -> HttpResponse:
    experiment = experiment_or_404(request, experiment_id)
    form = ExperimentForm(request.POST)
    if not form.is_valid():
        return _experiment_page(request, experiment, form=form, status=400)
    try:
        services.experiment_update(
            experiment=experiment,
            actor=request.user,
            name=form.cleaned_data["name"],
            description=form.cleaned_data["description"],
        )
    except StudioloError as error:
        add_service_error(form, error)
        experiment.refresh_from_db()  # the page shows what is stored, not the refused name
        return _experiment_page(request, experiment, form=form, status=error.status)
    messages.success(request, f"Experiment “{experiment.name}” saved.")
    return redirect("experiment-detail", experiment_id=experiment.pk)


@require_POST
def experiment_delete_view(request: AuthedRequest, experiment_id: int) -> HttpResponse:
    experiment = experiment_or_404(request, experiment_id)
    try:
        services.experiment_delete(experiment=experiment, actor=request.user)
    except StudioloError as error:
        messages.error(request, error.message)
        return _experiment_page(request, experiment, status=error.status)
    messages.success(
        request,
        f"Experiment “{experiment.name}” and its runs deleted. "
        "Restore it from the deleted experiments while it is kept.",
    )
    return redirect("experiments")


@require_POST
def experiment_restore_view(request: AuthedRequest, experiment_id: int) -> HttpResponse:
    experiment = experiment_or_404(request, experiment_id)
    try:
        services.experiment_restore(experiment=experiment, actor=request.user)
    except StudioloError as error:
        messages.error(request, error.message)
        return _experiment_page(request, experiment, status=error.status)
    messages.success(request, f"Experiment “{experiment.name}” restored with its runs.")
    return redirect("experiment-detail", experiment_id=experiment.pk)
