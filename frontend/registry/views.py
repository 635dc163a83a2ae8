"""The model registry pages: groups, a group's versions (table and chart), a package's page
(lineage, metrics, approval history, the decision form), the reviewer's inbox, and the
register-from-job form.

Like every UI view: parse, call the registry services and selectors, render. Service errors
become field errors or messages, never a 500.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.contrib import messages
from django.db.models import Prefetch, prefetch_related_objects
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from frontend.access import AuthedRequest, allows, noted
from frontend.forms import add_service_error
from frontend.registry.charts import VersionMetrics, metric_names, versions_metric_figure
from frontend.registry.display import APPROVAL_COLOURS, APPROVAL_LABELS, approval_colour
from frontend.registry.forms import NEW_GROUP, RegisterForm
from frontend.teams import current_team
from jobs.models import Job
from jobs.selectors import job_for_user
from registry import selectors
from registry.models import ApprovalVote, ModelPackage, ModelPackageGroup
from registry.services.approval import package_decide, package_is_deployable
from registry.services.registration import (
    InferenceSpec,
    package_register_from_job,
    package_register_from_job_in_new_group,
    registration_refusal,
)
from studio.accounts.roles import Action
from studio.errors import NotFound, StudioloError

# --- groups ------------------------------------------------------------------------------


@require_GET
def model_list(request: AuthedRequest) -> HttpResponse:
    team = current_team(request)
    groups: list[ModelPackageGroup] = []
    if team is not None:
        groups = list(
            selectors.groups_with_latest(
                selectors.groups_for_user(request.user).filter(team=team)
            ).order_by("name")
        )
    return render(
        request,
        "frontend/models/list.html",
        {
            "rows": [
                {
                    "group": group,
                    "colour": approval_colour(group.latest_status or ""),  # type: ignore[attr-defined]
                    "label": APPROVAL_LABELS.get(group.latest_status or "", ""),  # type: ignore[attr-defined]
                }
                for group in groups
            ],
        },
    )


@require_GET
def model_group(request: AuthedRequest, name: str) -> HttpResponse:
    team = current_team(request)
    if team is None:
        raise Http404("no team")
    try:
        group = selectors.group_for_user(request.user, team=team.slug, name=name)
    except NotFound as exc:
        raise Http404(exc.message) from exc
    packages = list(
        group.packages.select_related("created_by").prefetch_related("votes").order_by("-version")
    )
    versions = [VersionMetrics(p.version, p.approval_status, p.metrics) for p in packages]
    names = metric_names(versions)
    rows = []
    for package in packages:
        rows.append(
            {
                "package": package,
                "colour": approval_colour(package.approval_status),
                "votes": selectors.package_votes(package),
                "metrics": [package.metrics.get(metric) for metric in names],
            }
        )
    return render(
        request,
        "frontend/models/group.html",
        {
            "group": group,
            "rows": rows,
            "metric_names": names,
            "figures": {metric: versions_metric_figure(versions, metric) for metric in names},
        },
    )


# --- one package -------------------------------------------------------------------------


def _package_or_404(request: AuthedRequest, name: str, version: int) -> ModelPackage:
    team = current_team(request)
    if team is None:
        raise Http404("no team")
    try:
        package = selectors.package_for_user(
            request.user, team=team.slug, group=name, version=version
        )
    except NotFound as exc:
        raise Http404(exc.message) from exc
    return package


@dataclass(frozen=True)
class ChainLink:
    kind: str  # data, job, run, artifact, package, endpoints
    title: str
    lines: tuple[str, ...]
    href: str | None = None
    empty: bool = False


def _chain(lineage: dict[str, Any]) -> list[ChainLink]:
    job = lineage["job"]
    run = lineage["run"]
    data = tuple(f"{c['name']}: {c['uri']}" for c in lineage["input_data"])
    return [
        ChainLink("data", "Input data", data or ("none recorded",), empty=not data),
        ChainLink(
            "job",
            "Training job",
            (job["name"], job["training_image"]) if job else ("external artifact",),
            href=reverse("job-detail", args=[job["id"]]) if job else None,
            empty=job is None,
        ),
        ChainLink(
            "run",
            "Run",
            (f"{run['experiment']} / {run['name']}",) if run else ("none",),
            empty=run is None,
        ),
        ChainLink(
            "artifact",
            "Model artifact",
            (lineage["artifact"]["uri"].rsplit("/", 1)[-1], lineage["artifact"]["uri"]),
        ),
        ChainLink(
            "package",
            "Package",
            (f"{lineage['package']['group']} v{lineage['package']['version']}",),
        ),
        _endpoints_link(lineage["endpoints"]),
    ]


def _endpoints_link(endpoints: list[dict[str, Any]]) -> ChainLink:
    """The chain's last link: the endpoints serving the package (one: its page; several:
    the endpoints list)."""
    if not endpoints:
        return ChainLink("endpoints", "Endpoints", ("none yet",), empty=True)
    return ChainLink(
        "endpoints",
        "Endpoints",
        tuple(f"{e['name']} ({e['status']})" for e in endpoints),
        href=reverse("endpoint-detail", args=[endpoints[0]["name"]])
        if len(endpoints) == 1
        else reverse("endpoints"),
    )


@require_GET
def model_package(request: AuthedRequest, name: str, version: int) -> HttpResponse:
    package = _package_or_404(request, name, version)
    team = package.group.team
    lineage = selectors.package_lineage(package)
    prefetch_related_objects(
        [package], Prefetch("votes", queryset=ApprovalVote.objects.select_related("actor"))
    )
    shown = selectors.package_votes(package)
    return render(
        request,
        "frontend/models/package.html",
        {
            "package": package,
            "group": package.group,
            "colour": approval_colour(package.approval_status),
            "chain": _chain(lineage),
            "lineage": lineage,
            "votes": shown.votes,
            "approvals": shown.approvals,
            "votes_decided": shown.decided,
            "transitions": [
                {
                    "row": t,
                    "colour": approval_colour(t.to_status),
                    "label": APPROVAL_LABELS.get(t.to_status, t.to_status),
                }
                for t in package.transitions.all()
            ],
            "may_decide": selectors.package_may_decide(request.user, package),
            "is_author": package.created_by_id == request.user.pk,
            "can_approve_role": allows(request, team, Action.APPROVE_MODEL),
            # The registry's policy decides what may be served; the service asks it again.
            "can_deploy": package_is_deployable(package) and allows(request, team, Action.DEPLOY),
            "live_config": {
                "package": package.pk,
                "api": reverse(
                    "api-model-package",
                    kwargs={"team": team.slug, "name": package.group.name, "version": version},
                ),
                "colours": APPROVAL_COLOURS,
                "labels": APPROVAL_LABELS,
            },
        },
    )


@require_POST
def model_package_decide(request: AuthedRequest, name: str, version: int) -> HttpResponse:
    package = _package_or_404(request, name, version)
    decision = request.POST.get("decision", "")
    try:
        result = package_decide(
            package=package,
            actor=request.user,
            decision=decision,
            comment=request.POST.get("comment", ""),
        )
    except StudioloError as error:
        messages.error(request, error.message)
    else:
        if result.changed:
            messages.success(
                request, f"{package} is now {APPROVAL_LABELS[result.package.approval_status]}."
            )
        else:
            messages.success(
                request,
                f"Your approval is recorded: {result.approvals} of {result.required}.",
            )
    return redirect("model-package", name=name, version=version)


# --- the reviewer's inbox ----------------------------------------------------------------


@require_GET
def model_review(request: AuthedRequest) -> HttpResponse:
    packages = list(selectors.packages_awaiting_review(request.user)[:200])
    return render(
        request,
        "frontend/models/review.html",
        {
            "packages": packages,
            "live_config": {"api": reverse("api-model-packages-awaiting-review")},
        },
    )


# --- register from a job -----------------------------------------------------------------


@require_http_methods(["GET", "POST"])
def model_register(request: AuthedRequest, job_id: int) -> HttpResponse:
    try:
        job = job_for_user(request.user, job_id)
    except NotFound as exc:  # another team's job is no different from no job
        raise Http404(exc.message) from exc
    team = noted(request, job.team)
    groups = list(
        ModelPackageGroup.objects.filter(team=team).order_by("name").values_list("name", flat=True)
    )
    status = 200
    refusal = registration_refusal(job=job, actor=request.user)
    form = RegisterForm(request.POST or None, groups=groups)
    if request.method == "POST":
        if form.is_valid():
            try:
                package = _register(request, job, form)
            except StudioloError as error:
                if error.field == "name":  # the new group's name
                    form.add_error("new_group", error.message)
                else:
                    add_service_error(form, error)
                status = error.status
            else:
                messages.success(request, f"Registered {package} for review.")
                return redirect("model-package", name=package.group.name, version=package.version)
        else:
            status = 400
    return render(
        request,
        "frontend/models/register.html",
        {
            "form": form,
            "job": job,
            # The registry's answer, and its reason shown instead of the form.
            "register_refusal": refusal.message if refusal is not None else "",
        },
        status=status,
    )


def _register(request: AuthedRequest, job: Job, form: RegisterForm) -> ModelPackage:
    data = form.cleaned_data
    inference = InferenceSpec(
        framework=data["framework"] or "",
        image=(data["image"] or "").strip(),
        entry_point=(data["entry_point"] or "").strip(),
    )
    description = data["description"] or ""
    if data["group"] == NEW_GROUP:
        return package_register_from_job_in_new_group(
            team=job.team,
            group_name=(data["new_group"] or "").strip(),
            approvals_required=data["approvals_required"] or 1,
            job=job,
            actor=request.user,
            inference=inference,
            description=description,
        )
    group = selectors.group_for_user(request.user, team=job.team.slug, name=data["group"])
    return package_register_from_job(
        group=group, job=job, actor=request.user, inference=inference, description=description
    )
