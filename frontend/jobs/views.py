"""The jobs pages: the team's list, a new-job form, a job's page, and its Stop button.

Like every UI view: parse, call the jobs services and selectors, render. Service errors
become field errors or messages, never a 500.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.contrib import messages
from django.db.models import Count, Q, QuerySet
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from compute.instance_types import instance_types
from experiments.selectors import metric_series
from frontend.access import AuthedRequest, allows, noted
from frontend.charts import metric_figure
from frontend.forms import encode_cursor, without_cursor
from frontend.jobs.display import (
    STATUS_COLOURS,
    STATUS_FILTER_BY_KEY,
    STATUS_FILTERS,
    elapsed,
    format_duration,
    status_colour,
)
from frontend.jobs.forms import JobCreateForm, JobFilterForm
from frontend.teams import current_membership
from jobs.models import (
    ACTIVE_STATUSES,
    RUNNING_PHASES,
    TERMINAL_STATUSES,
    Job,
    JobKind,
    JobStatus,
    SecondaryStatus,
)
from jobs.names import is_job_name
from jobs.selectors import (
    job_checkpoint_last_line,
    job_download_links,
    job_for_user,
    job_log_page,
    jobs_filtered,
    processing_output_links,
)
from jobs.services.lifecycle import job_stop, job_stop_refusal
from jobs.services.submission import job_create
from studio.accounts.models import Team
from studio.accounts.roles import Action
from studio.artifacts import get_store
from studio.artifacts.keys import team_prefix
from studio.artifacts.services import artifact_put
from studio.errors import NotFound, StudioloError

log = logging.getLogger(__name__)

JOBS_PAGE_SIZE = 50
# The job page renders at most this many of the newest log lines (and jobs.js keeps at
# most as many in the DOM); the download has all of them.
LOG_TAIL = 5000


# --- list --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Chip:
    key: str
    label: str
    count: int
    href: str
    active: bool


@require_GET
def job_list(request: AuthedRequest) -> HttpResponse:
    team = _current_team_or_none(request)
    form = JobFilterForm(request.GET or None)
    jobs: list[Job] = []
    chips: list[Chip] = []
    older_url = None
    status_key = ""
    if team is not None and (not form.is_bound or form.is_valid()):
        data = form.cleaned_data if form.is_bound else {}
        status_key = data.get("status") or ""
        search = (data.get("q") or "").strip()
        # The chips count the jobs of every status the search finds; the table lists those
        # of the chosen one.
        chips = _chips(request, jobs_filtered(request.user, team=team, name=search), status_key)
        listed = jobs_filtered(
            request.user, team=team, statuses=STATUS_FILTER_BY_KEY[status_key].statuses, name=search
        )
        cursor = data.get("cursor")
        if cursor is not None:
            # Keyset paging on the table's ordering (-created_at, -id): constant cost at any
            # depth, and stable while new jobs arrive at the top.
            created_at, job_id = cursor
            listed = listed.filter(
                Q(created_at__lt=created_at) | Q(created_at=created_at, id__lt=job_id)
            )
        jobs = list(listed.order_by("-created_at", "-id")[: JOBS_PAGE_SIZE + 1])
        if len(jobs) > JOBS_PAGE_SIZE:
            jobs = jobs[:JOBS_PAGE_SIZE]
            query = request.GET.copy()
            query["cursor"] = encode_cursor(jobs[-1].created_at, jobs[-1].pk)
            older_url = f"?{query.urlencode()}"
    now = timezone.now()
    return render(
        request,
        "frontend/jobs/list.html",
        {
            "form": form,
            "rows": [_row(job, now) for job in jobs],
            "chips": chips,
            "status_key": status_key,
            "older_url": older_url,
            "paged": bool(request.GET.get("cursor")),
            "newest_url": without_cursor(request),
            "can_submit": allows(request, team, Action.SUBMIT_JOB),
            "live_config": {
                **_status_vocabulary(),
                "statuses": sorted(STATUS_FILTER_BY_KEY[status_key].statuses),
                "search": (form.cleaned_data.get("q") or "").strip() if form.is_bound else "",
                "newest_id": max((job.pk for job in jobs), default=0),
                "first_page": not request.GET.get("cursor"),
            },
        },
    )


def _chips(request: AuthedRequest, jobs: QuerySet[Job], selected: str) -> list[Chip]:
    # One aggregate query for every chip's count, whatever the number of jobs.
    counts = jobs.aggregate(
        **{
            f"n_{f.key or 'all'}": Count("pk", filter=f.q()) if f.statuses else Count("pk")
            for f in STATUS_FILTERS
        }
    )
    chips = []
    for status_filter in STATUS_FILTERS:
        query = request.GET.copy()
        query.pop("cursor", None)
        query.pop("status", None)
        if status_filter.key:
            query["status"] = status_filter.key
        chips.append(
            Chip(
                key=status_filter.key,
                label=status_filter.label,
                count=counts[f"n_{status_filter.key or 'all'}"],
                href=f"?{query.urlencode()}" if query else request.path,
                active=status_filter.key == selected,
            )
        )
    return chips


@dataclass(frozen=True)
class JobRow:
    job: Job
    colour: str
    duration: str
    active: bool


def _row(job: Job, now: datetime) -> JobRow:
    return JobRow(
        job=job,
        colour=status_colour(job.status),
        duration=format_duration(elapsed(job.created_at, job.ended_at, now)),
        active=job.status in ACTIVE_STATUSES,
    )


# --- new job -----------------------------------------------------------------------------


@require_http_methods(["GET", "POST"])
def job_new(request: AuthedRequest) -> HttpResponse:
    team = _current_team_or_none(request)
    status = 200
    if request.method == "POST" and team is not None:
        form = JobCreateForm(request.POST, request.FILES)
        if form.is_valid():
            try:
                job = _submit(request, team, form)
            except _Rejected as rejected:
                form.add_service_error(rejected.error, uploaded=rejected.uploaded)
                status = rejected.error.status
            else:
                messages.success(request, f"Job “{job.name}” submitted.")
                return redirect("job-detail", job_id=job.pk)
        else:
            status = 400
    else:
        form = JobCreateForm()
    return render(
        request,
        "frontend/jobs/new.html",
        {
            "form": form,
            "can_submit": allows(request, team, Action.SUBMIT_JOB),
            "upload_prefix": f"{team_prefix(team)}uploads/" if team else "",
            # Browsers never refill a file input: say so when a chosen file was refused.
            "upload_lost": status != 200 and "source_file" in request.FILES,
        },
        status=status,
    )


class _Rejected(Exception):
    def __init__(self, error: StudioloError, *, uploaded: bool) -> None:
        super().__init__(error.message)
        self.error = error
        self.uploaded = uploaded


def _submit(request: AuthedRequest, team: Team, form: JobCreateForm) -> Job:
    """Upload the source (if any), then create the job; on a refusal remove the upload.

    The upload goes to a folder of its own, `teams/<slug>/uploads/<job name>/<stamp>/`, so
    it can never replace the source of an existing job with the same name (the service
    only refuses that name after the upload). The upload is slow I/O and is kept out of any
    transaction; a refused job takes its upload with it, so an error leaves nothing behind.
    """
    upload = form.cleaned_data.get("source_file")
    source_uri = (form.cleaned_data.get("source_uri") or "").strip()
    entry_point = (form.cleaned_data.get("entry_point") or "").strip()
    name = form.cleaned_data["name"].strip()
    staged: str | None = None
    # A name the service refuses cannot become part of a key; the service says why below.
    if upload is not None and is_job_name(name):
        stamp = f"{timezone.now():%Y%m%dT%H%M%S}-{secrets.token_hex(3)}"
        staged = f"{team_prefix(team)}uploads/{name}/{stamp}"
        filename = upload.name or "source"
        try:
            uri, _ = artifact_put(user=request.user, key=f"{staged}/{filename}", data=upload)
        except StudioloError as error:
            raise _Rejected(error, uploaded=True) from error
        if filename.lower().endswith(".py"):
            # A single script is a source folder of one file; it is the entry point unless
            # another one was named.
            source_uri = uri.rsplit("/", 1)[0]
            entry_point = entry_point or filename
        else:
            source_uri = uri
    try:
        return job_create(
            team=team,
            actor=request.user,
            request=form.job_request(source_uri=source_uri, entry_point=entry_point),
        )
    except StudioloError as error:
        if staged is not None:
            _discard(staged)
        raise _Rejected(error, uploaded=upload is not None) from error


def _discard(prefix: str) -> None:
    try:
        get_store().delete_prefix(prefix + "/")
    except StudioloError as exc:  # an orphaned upload is untidy, not wrong: keep the refusal
        log.warning("could not remove the refused job's upload %s: %s", prefix, exc.message)


# --- one job -----------------------------------------------------------------------------


@require_GET
def job_detail(request: AuthedRequest, job_id: int) -> HttpResponse:
    job = _job_or_404(request, job_id)
    now = timezone.now()
    transitions = list(job.transitions.all())
    after = max(0, job.log_line_count - LOG_TAIL)
    log_lines = list(job_log_page(job, after=after, limit=LOG_TAIL))
    charts = [
        {
            "name": definition["name"],
            "json_id": f"figure-{index}",
            "figure": metric_figure(
                definition["name"],
                metric_series(run_id=job.run_id, key=definition["name"])
                if job.run_id is not None
                else [],
            ),
        }
        for index, definition in enumerate(job.metric_definitions, start=1)
    ]
    downloads = _download_links(job)
    instance = instance_types().get(job.instance_type)
    terminal = job.status in TERMINAL_STATUSES
    # A job of several instances labels each line with its host and offers a host filter;
    # one instance's lines need no label (they are all algo-1's, or the platform's).
    hosts = (
        [f"algo-{n}" for n in range(1, job.instance_count + 1)] if job.instance_count > 1 else []
    )
    return render(
        request,
        "frontend/jobs/detail.html",
        {
            "job": job,
            "colour": status_colour(job.status),
            "terminal": terminal,
            "transitions": [
                {
                    "row": row,
                    "colour": status_colour(row.to_status),
                    "label": JobStatus(row.to_status).label,
                }
                for row in transitions
            ],
            "log_lines": log_lines,
            "hosts": hosts,
            "log_total": job.log_line_count,
            "log_truncated": job.log_line_count > len(log_lines),
            "charts": charts,
            "downloads": [
                {"name": f"{name}.tar.gz", "href": href, "uri": uri}
                for name, href, uri in (
                    ("model", downloads.get("model"), job.model_artifact_uri),
                    ("output", downloads.get("output"), job.output_artifact_uri),
                )
                if href
            ],
            "instance": instance,
            "checkpoint_line": job_checkpoint_last_line(job),
            "duration": format_duration(elapsed(job.created_at, job.ended_at, now)),
            "max_runtime": format_duration(timedelta(seconds=job.max_runtime_seconds)),
            # Counts up on the page while the job trains (or transforms).
            "training_since": job.training_started_at
            if job.secondary_status in RUNNING_PHASES and not terminal
            else None,
            "is_transform": job.kind == JobKind.TRANSFORM,
            "is_processing": job.kind == JobKind.PROCESSING,
            # Each output with links to the files uploaded so far.
            "processing_outputs": processing_output_links(job)
            if job.kind == JobKind.PROCESSING
            else [],
            "training_time": format_duration(
                elapsed(job.training_started_at, job.training_ended_at or job.ended_at, now)
            ),
            "can_stop": job_stop_refusal(job=job, actor=request.user) is None,
            "live_config": {
                "job": job.pk,
                "socket": f"/ws/jobs/{job.pk}/logs",
                # A finished job's page has every line it will ever have: no socket needed.
                "connect": not terminal,
                **_status_vocabulary(),
                "terminal": sorted(str(s) for s in TERMINAL_STATUSES),
                "tail": LOG_TAIL,
                "last_seq": log_lines[-1].seq if log_lines else 0,
                "total": job.log_line_count,
                "show_hosts": bool(hosts),
            },
        },
    )


@require_POST
def job_stop_view(request: AuthedRequest, job_id: int) -> HttpResponse:
    job = _job_or_404(request, job_id)
    try:
        job_stop(job=job, actor=request.user)
    except StudioloError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, f"Stop requested for “{job.name}”.")
    return redirect("job-detail", job_id=job.pk)


# --- helpers -----------------------------------------------------------------------------


def _download_links(job: Job) -> dict[str, str]:
    return job_download_links(job)


def _status_vocabulary() -> dict[str, dict[str, str]]:
    """What jobs.js needs to draw a status it hears about live like the server does."""
    return {
        "colours": STATUS_COLOURS,
        "labels": {value: str(label) for value, label in JobStatus.choices},
        "secondary_labels": {value: str(label) for value, label in SecondaryStatus.choices},
    }


def _current_team_or_none(request: AuthedRequest) -> Team | None:
    membership = current_membership(request)
    return membership.team if membership is not None else None


def _job_or_404(request: AuthedRequest, job_id: int) -> Job:
    try:
        job = job_for_user(request.user, job_id)
    except NotFound as exc:  # another team's job is no different from no job
        raise Http404(exc.message) from exc
    noted(request, job.team)  # what the page offers is asked of the services without a query
    return job
