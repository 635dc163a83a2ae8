"""The run pages: a run's page (attributes, params, tags, metric summaries and charts,
artifacts, the job it came from; rename, delete and restore through the experiments
services), the compare view (runs side by side, parallel coordinates, a scatter of any two
columns, metric curves overlaid), and the JSON endpoint both draw their metric curves from.

The curves are fetched, not rendered into the page: a metric of a million points reaches the
browser downsampled on the server to the pixels of its chart (each bucket's min and max, so
spikes survive), and zooming asks again for the visible step range at the same budget, which
is full resolution once the range is narrow enough. A live run's page hears `run.metrics` on
/ws/events and asks only for the points after the last step it has.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.http import Http404, HttpResponse, JsonResponse, QueryDict
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.csp import CSP
from django.views.decorators.cache import never_cache
from django.views.decorators.csp import csp_override
from django.views.decorators.http import require_GET, require_POST

from experiments import selectors, services
from experiments.models import Lifecycle, Run, RunStatus
from experiments.services.common import now_ms
from experiments.validation import INT64_MAX, INT64_MIN, json_float
from frontend.access import AuthedRequest, allows
from frontend.experiments.charts import (
    RunValues,
    column_options,
    parallel_coordinates_figure,
    scatter_figure,
)
from frontend.experiments.display import (
    STATUS_COLOURS,
    STATUS_LABELS,
    compare_rows,
    format_metric,
    ms_to_datetime,
    run_colour,
    run_duration,
    status_colour,
)
from frontend.experiments.forms import RunRenameForm
from frontend.experiments.views import MAX_COMPARE_RUNS
from frontend.forms import add_service_error
from frontend.jobs import display as jobs_display
from studio.accounts.roles import Action
from studio.errors import NotFound, StudioloError, ValidationError

# The series endpoint's limits: a chart is at most MAX_WIDTH pixels wide, and one request
# draws at most MAX_SERIES curves (all runs of a compare view for one metric, or one run's
# metrics for a live update).
MIN_WIDTH, MAX_WIDTH, DEFAULT_WIDTH = 16, selectors.MAX_DOWNSAMPLED_POINTS // 2, 800
MAX_SERIES_KEYS = 100
MAX_SERIES = 200
# Series per request when a page asks for its charts' first series: a run's page of up to
# 10 metrics in one request; a page with more draws its first charts before the rest.
FIRST_SERIES_BATCH = 10


def run_or_404(request: AuthedRequest, run_id: str) -> Run:
    try:
        return selectors.run_for_user(request.user, run_id)
    except NotFound as exc:  # another team's run is no different from none
        raise Http404(exc.message) from exc


def _charts_config(runs: list[Run], keys: list[str], *, webgl: bool) -> dict[str, Any]:
    """What experiments.js needs to draw and follow the metric charts of these runs; `webgl`
    says whether the page's plotly bundle has scattergl (the full one, not the basic one)."""
    return {
        "series": reverse("runs-series"),
        "batch": FIRST_SERIES_BATCH,
        "webgl": webgl,
        "keys": keys,
        "runs": [
            {
                "id": run.run_uuid,
                "name": run.name,
                "start_time": run.start_time,
                "colour": run_colour(index),
                "status": run.status,
                "api": reverse("api-run", args=[run.run_uuid]),
            }
            for index, run in enumerate(runs)
        ],
        "colours": STATUS_COLOURS,
        "labels": STATUS_LABELS,
        "max_width": MAX_WIDTH,
    }


# --- a run's page --------------------------------------------------------------------------


def _artifacts(run: Run, path: str) -> tuple[list[dict[str, Any]], str, int]:
    """The folder's entries with their links, an error message, and the page's status: a bad
    path is the request's fault (4xx); an unreachable store is not, and the page still shows."""
    try:
        entries = services.run_artifact_list(run=run, path=path)
    except StudioloError as error:
        return [], error.message, error.status if error.status < 500 else 200
    return (
        [
            {
                "entry": entry,
                "name": entry.path.rsplit("/", 1)[-1],
                "href": "?" + urlencode({"path": entry.path})
                if entry.is_dir
                else reverse("api-run-artifact", args=[run.run_uuid, entry.path]),
            }
            for entry in entries
        ],
        "",
        200,
    )


def _breadcrumbs(path: str) -> list[tuple[str, str]]:
    parts = [part for part in path.split("/") if part]
    return [(part, "/".join(parts[: index + 1])) for index, part in enumerate(parts)]


@require_GET
def run_detail(request: AuthedRequest, run_id: str) -> HttpResponse:
    return _run_page(request, run_or_404(request, run_id))


def _run_page(
    request: AuthedRequest,
    run: Run,
    *,
    form: RunRenameForm | None = None,
    status: int | None = None,
) -> HttpResponse:
    """The run's page; with the rename form that was refused, and the status that says why."""
    path = request.GET.get("path", "").strip("/")
    artifacts, artifacts_error, artifacts_status = _artifacts(run, path)
    summaries = list(run.metric_summaries.all())
    job = getattr(run, "job", None)  # the reverse one-to-one, joined by the selector
    return render(
        request,
        "frontend/experiments/run.html",
        {
            "run": run,
            "experiment": run.experiment,
            "colour": status_colour(run.status),
            "deleted": run.lifecycle != Lifecycle.ACTIVE,
            "restorable_until": run.deleted_at + timedelta(days=settings.TRACKING_RETENTION_DAYS)
            if run.deleted_at
            else None,
            "running": run.status == RunStatus.RUNNING,
            "started": ms_to_datetime(run.start_time),
            "ended": ms_to_datetime(run.end_time),
            "duration": run_duration(run, now_ms()),
            "params": list(run.params.all()),
            "tags": list(run.tags.all()),
            "metrics": [
                {
                    "summary": summary,
                    "last": format_metric(summary.last_value),
                    "min": format_metric(summary.min_value),
                    "max": format_metric(summary.max_value),
                }
                for summary in summaries
            ],
            "job": job,
            "job_colour": jobs_display.status_colour(job.status) if job else "",
            "artifacts": artifacts,
            "artifacts_error": artifacts_error,
            "artifact_path": path,
            "artifact_crumbs": _breadcrumbs(path),
            "can_write": allows(request, run.experiment.team, Action.TRACK),
            "form": form or RunRenameForm.for_run(run),
            "form_open": form is not None,
            "charts_config": _charts_config(
                [run], [summary.key for summary in summaries], webgl=False
            ),
        },
        status=status or artifacts_status,
    )


# --- renaming, deleting and restoring a run --------------------------------------------------


@require_POST
def run_rename_view(request: AuthedRequest, run_id: str) -> HttpResponse:
    run = run_or_404(request, run_id)
    form = RunRenameForm(request.POST)
    if not form.is_valid():
        return _run_page(request, run, form=form, status=400)
    try:
        services.run_rename(run=run, actor=request.user, name=form.cleaned_data["name"])
    except StudioloError as error:
        run.refresh_from_db(fields=["name", "lifecycle", "deleted_at"])  # what is stored
        if error.field not in form.fields:  # not about the name (a deleted run has no form)
            messages.error(request, error.message)
            return _run_page(request, run, status=error.status)
        add_service_error(form, error)
        return _run_page(request, run, form=form, status=error.status)
    messages.success(request, f"Run renamed to “{run.name}”.")
    return redirect("run-detail", run_id=run.run_uuid)


@require_POST
def run_delete_view(request: AuthedRequest, run_id: str) -> HttpResponse:
    run = run_or_404(request, run_id)
    try:
        services.run_delete(run=run, actor=request.user)
    except StudioloError as error:
        messages.error(request, error.message)
        return _run_page(request, run, status=error.status)
    messages.success(
        request,
        f"Run “{run.name}” deleted. It waits under the experiment's deleted runs, restorable "
        f"for {settings.TRACKING_RETENTION_DAYS} days.",
    )
    return redirect("experiment-detail", experiment_id=run.experiment_id)


@require_POST
def run_restore_view(request: AuthedRequest, run_id: str) -> HttpResponse:
    run = run_or_404(request, run_id)
    try:
        services.run_restore(run=run, actor=request.user)
    except StudioloError as error:
        messages.error(request, error.message)
        return _run_page(request, run, status=error.status)
    messages.success(request, f"Run “{run.name}” restored.")
    return redirect("run-detail", run_id=run.run_uuid)


# --- the compare view ----------------------------------------------------------------------


def _run_ids(query: QueryDict) -> list[str]:
    """The `run` parameters, in order, each once."""
    return list(dict.fromkeys(value.strip() for value in query.getlist("run") if value.strip()))


def _compare_error(request: AuthedRequest, message: str, status: int) -> HttpResponse:
    return render(
        request,
        "frontend/experiments/compare.html",
        {"error": message, "max_compare": MAX_COMPARE_RUNS},
        status=status,
    )


# The compare page loads plotly.js's full bundle for its WebGL traces (parallel coordinates,
# many runs' curves): its WebGL layer (regl) compiles functions from strings, so this page's
# Content-Security-Policy allows eval, and no other page's does.
WEBGL_PAGE_CSP: dict[str, list[str]] = {
    **settings.SECURE_CSP,
    "script-src": [CSP.SELF, CSP.UNSAFE_EVAL],
}


@require_GET
@csp_override(WEBGL_PAGE_CSP)
def runs_compare(request: AuthedRequest) -> HttpResponse:
    run_ids = _run_ids(request.GET)
    if not 2 <= len(run_ids) <= MAX_COMPARE_RUNS:
        return _compare_error(
            request, f"Pick between 2 and {MAX_COMPARE_RUNS} runs to compare.", 400
        )
    try:
        runs = selectors.runs_by_ids(request.user, run_ids)
    except NotFound as exc:
        raise Http404(exc.message) from exc
    values = [
        RunValues(
            name=run.name,
            colour=run_colour(index),
            params={param.key: param.value for param in run.params.all()},
            metrics={summary.key: summary.last_value for summary in run.metric_summaries.all()},
        )
        for index, run in enumerate(runs)
    ]
    options = column_options(values)
    param_keys = sorted({key for run in values for key in run.params})
    metric_keys = sorted({key for run in values for key in run.metrics})
    metric = request.GET.get("metric") or (metric_keys[0] if metric_keys else "")
    if metric and metric not in metric_keys:
        return _compare_error(request, f"None of these runs has a metric {metric!r}.", 400)
    default_x = options[0] if options else ""
    x = request.GET.get("x") or default_x
    y = request.GET.get("y") or (f"metrics.{metric}" if metric else default_x)
    for axis, column in (("x", x), ("y", y)):
        if column and column not in options:
            return _compare_error(
                request, f"{axis}: {column!r} is not a param or metric of these runs.", 400
            )
    experiments = list(dict.fromkeys(run.experiment for run in runs))
    return render(
        request,
        "frontend/experiments/compare.html",
        {
            "runs": [
                {
                    "run": run,
                    "colour": run_colour(index),
                    "status_colour": status_colour(run.status),
                }
                for index, run in enumerate(runs)
            ],
            "experiments": experiments,
            "rows": compare_rows(runs, now_ms()),
            "metric_keys": metric_keys,
            "metric": metric,
            "options": options,
            "x": x,
            "y": y,
            "parallel": parallel_coordinates_figure(values, param_keys, metric) if metric else None,
            "scatter": scatter_figure(values, x, y) if x and y else None,
            "charts_config": _charts_config(runs, metric_keys, webgl=True),
            "max_compare": MAX_COMPARE_RUNS,
        },
    )


# --- the series endpoint -------------------------------------------------------------------


def _json_error(error: StudioloError) -> JsonResponse:
    body = {"error": {"code": error.code, "message": error.message, "field": error.field}}
    return JsonResponse(body, status=error.status)


def _int_param(query: QueryDict, name: str) -> int | None:
    raw = query.get(name, "").strip()
    if not raw:
        return None
    try:
        value = int(raw)
    except ValueError:
        raise ValidationError(
            f"{name}: an integer is required, not {raw[:40]!r}", field=name
        ) from None
    if not INT64_MIN <= value <= INT64_MAX:
        raise ValidationError(f"{name}: out of range", field=name)
    return value


@never_cache
@require_GET
def runs_series(request: AuthedRequest) -> JsonResponse:
    """`?run=<id>&...&key=<metric>&...&width=<pixels>[&step_min=&step_max=]`: each run's
    series of each key, downsampled to `2 × width` points (a min and a max per pixel) when
    longer, as columns: `{"series": [{"run", "key", "sampled", "step", "value", "time"}]}`.
    Non-finite values are "NaN", "Infinity" and "-Infinity", as in the tracking API."""
    query = request.GET
    try:
        run_ids = _run_ids(query)
        keys = list(dict.fromkeys(key for key in query.getlist("key") if key))
        if not 1 <= len(run_ids) <= MAX_COMPARE_RUNS:
            raise ValidationError(f"run: between 1 and {MAX_COMPARE_RUNS} runs", field="run")
        if not 1 <= len(keys) <= MAX_SERIES_KEYS:
            raise ValidationError(f"key: between 1 and {MAX_SERIES_KEYS} keys", field="key")
        if len(run_ids) * len(keys) > MAX_SERIES:
            raise ValidationError(
                f"at most {MAX_SERIES} series (runs × keys) per request", field="key"
            )
        asked_width = _int_param(query, "width")
        width = DEFAULT_WIDTH if asked_width is None else asked_width
        if not MIN_WIDTH <= width <= MAX_WIDTH:
            raise ValidationError(f"width: between {MIN_WIDTH} and {MAX_WIDTH}", field="width")
        step_min = _int_param(query, "step_min")
        step_max = _int_param(query, "step_max")
    except ValidationError as error:
        return _json_error(error)
    found = dict(
        selectors.runs_for_user(request.user)
        .filter(run_uuid__in=run_ids)
        .values_list("run_uuid", "pk")
    )
    missing = [run_id for run_id in run_ids if run_id not in found]
    if missing:
        return _json_error(NotFound(f"run {missing[0]} not found", field="run"))
    series = []
    for run_id in run_ids:
        for key in keys:
            points, sampled = selectors.metric_history_downsampled(
                run_id=found[run_id],
                key=key,
                max_points=min(2 * width, selectors.MAX_DOWNSAMPLED_POINTS),
                step_min=step_min,
                step_max=step_max,
            )
            series.append(
                {
                    "run": run_id,
                    "key": key,
                    "sampled": sampled,
                    "step": [point.step for point in points],
                    "value": [json_float(point.value) for point in points],
                    "time": [point.timestamp for point in points],
                }
            )
    return JsonResponse({"width": width, "series": series})
