"""The endpoint pages: the team's endpoints, an endpoint's page (variants, instances and their
history, events, traffic charts, the update form, Delete, the "try it" console), deploying an
Approved package, and the dashboard card.

Like every UI view: parse, call the endpoints services and selectors, render. Service errors
become field errors or messages, never a 500.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.contrib import messages
from django.db.models import Prefetch
from django.http import Http404, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from endpoints import selectors
from endpoints.models import (
    BUSY_STATUSES,
    Endpoint,
    EndpointStatus,
    InstanceStatus,
    ProductionVariant,
)
from endpoints.services.lifecycle import (
    endpoint_delete,
    endpoint_delete_refusal,
    endpoint_deploy_package,
    endpoint_update_package,
    endpoint_update_refusal,
)
from endpoints.services.models import (
    package_from_ref,
)
from frontend.access import AuthedRequest, allows, noted
from frontend.endpoints.charts import invocations_figure, latency_figure
from frontend.endpoints.forms import DeployForm, UpdateForm, add_endpoint_error
from frontend.registry.display import APPROVAL_COLOURS, APPROVAL_LABELS
from frontend.teams import current_team
from registry.models import ModelPackage
from registry.selectors import package_for_user, packages_for_user
from registry.services.approval import deploy_refusal, package_is_deployable
from studio.accounts.models import Team
from studio.accounts.roles import Action
from studio.accounts.services import TRY_IT_TOKEN_MINUTES, try_token_create
from studio.errors import Conflict, NotFound, StudioloError

# Colours named as the stylesheet's `status-<colour>` (frontend/jobs/display.py's palette):
# busy statuses pulse in blue/cyan/orange, serving is green, failed is red.
STATUS_COLOURS: dict[str, str] = {
    EndpointStatus.CREATING: "cyan",
    EndpointStatus.IN_SERVICE: "green",
    EndpointStatus.UPDATING: "blue",
    EndpointStatus.FAILED: "red",
    EndpointStatus.DELETING: "orange",
}
STATUS_LABELS: dict[str, str] = {value: str(label) for value, label in EndpointStatus.choices}
INSTANCE_COLOURS: dict[str, str] = {
    InstanceStatus.STARTING: "cyan",
    InstanceStatus.HEALTHY: "green",
    InstanceStatus.UNHEALTHY: "red",
    InstanceStatus.DRAINING: "orange",
    InstanceStatus.REMOVED: "gray",
}
INSTANCE_LABELS: dict[str, str] = {value: str(label) for value, label in InstanceStatus.choices}

PACKAGE_CHOICES = 200  # newest packages offered by the update form
TRAFFIC_MINUTES = 60


def status_colour(status: str) -> str:
    return STATUS_COLOURS.get(status, "gray")


def _endpoint_or_404(request: AuthedRequest, name: str) -> Endpoint:
    team = current_team(request)
    if team is None:
        raise Http404("no team")
    try:
        return selectors.endpoint_for_user(request.user, name, team=team.slug)
    except NotFound as exc:  # another team's endpoint is no different from no endpoint
        raise Http404(exc.message) from exc


@dataclass(frozen=True)
class ServedModel:
    """One variant's model as the pages show it: `churn/3` with its approval status."""

    variant: ProductionVariant
    ref: str | None  # GROUP/VERSION; None for an admin's image model
    href: str | None
    approval_status: str
    approval_label: str
    colour: str


def _served(variant: ProductionVariant) -> ServedModel:
    package = variant.model.package
    if package is None:
        return ServedModel(variant, None, None, "", "", "gray")
    return ServedModel(
        variant=variant,
        ref=f"{package.group.name}/{package.version}",
        href=reverse("model-package", args=[package.group.name, package.version]),
        approval_status=package.approval_status,
        approval_label=APPROVAL_LABELS.get(package.approval_status, package.approval_status),
        colour=APPROVAL_COLOURS.get(package.approval_status, "gray"),
    )


def _vocabulary() -> dict[str, Any]:
    """What endpoints.js needs to draw a status it hears about live like the server does."""
    return {
        "colours": STATUS_COLOURS,
        "labels": STATUS_LABELS,
        "instance_colours": INSTANCE_COLOURS,
        "instance_labels": INSTANCE_LABELS,
        "approval_colours": APPROVAL_COLOURS,
        "approval_labels": APPROVAL_LABELS,
        "busy": sorted(str(s) for s in BUSY_STATUSES),
    }


# --- list --------------------------------------------------------------------------------


@require_GET
def endpoint_list(request: AuthedRequest) -> HttpResponse:
    team = current_team(request)
    rows = []
    if team is not None:
        endpoints = (
            selectors.endpoints_for_user(request.user)
            .filter(team=team)
            .prefetch_related(Prefetch("config__variants", queryset=selectors.variants_queryset()))
            .order_by("name")
        )
        rows = [
            {
                "endpoint": endpoint,
                "colour": status_colour(endpoint.status),
                "served": [_served(v) for v in endpoint.config.variants.all()],
                "unserved": selectors.endpoint_unserved(endpoint),
            }
            for endpoint in endpoints
        ]
    return render(
        request,
        "frontend/endpoints/list.html",
        {
            "rows": rows,
            "live_config": {
                **_vocabulary(),
                "api": reverse("api-endpoints"),
                "team": team.slug if team else "",
            },
        },
    )


# --- one endpoint ------------------------------------------------------------------------


def _deployable_refs(request: AuthedRequest, team: Team) -> list[str]:
    """GROUP/VERSION of the team's newest packages that the registry lets us deploy."""
    packages = (
        packages_for_user(request.user)
        .filter(group__team=team)
        .order_by("group__name", "-version")[:PACKAGE_CHOICES]
    )
    return [f"{p.group.name}/{p.version}" for p in packages if package_is_deployable(p)]


def _update_initial(endpoint: Endpoint) -> dict[str, Any]:
    variants = list(endpoint.config.variants.all())
    if not variants:
        return {}
    first = variants[0]
    package = first.model.package
    return {
        "model": f"{package.group.name}/{package.version}" if package else "",
        "instance_type": first.instance_type,
        "instance_count": first.instance_count,
    }


def _traffic_charts(endpoint: Endpoint) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The last TRAFFIC_MINUTES of traffic, and its two charts."""
    now = timezone.now()
    traffic = selectors.endpoint_traffic(endpoint, minutes=TRAFFIC_MINUTES, now=now)
    charts = [
        {
            "key": "invocations",
            "json_id": "figure-invocations",
            "title": "Invocations and errors",
            "figure": invocations_figure(traffic, until=now),
        },
        {
            "key": "latency",
            "json_id": "figure-latency",
            "title": "Latency p50 / p90 / p99 (ms)",
            "figure": latency_figure(traffic, until=now),
        },
    ]
    return traffic, charts


def _detail(
    request: AuthedRequest,
    endpoint: Endpoint,
    *,
    update_form: UpdateForm | None = None,
    status: int = 200,
) -> HttpResponse:
    team = noted(request, endpoint.team)
    # The form is offered when the endpoints service would take an update now; a busy
    # endpoint's page says why it is not (its reason), a viewer's page says nothing.
    update_refusal = endpoint_update_refusal(endpoint=endpoint, actor=request.user)
    if update_form is None and update_refusal is None:
        update_form = UpdateForm(
            initial=_update_initial(endpoint), packages=_deployable_refs(request, team)
        )
    traffic, charts = _traffic_charts(endpoint)
    instances = list(endpoint.instances.all())
    events = selectors.endpoint_events(endpoint)
    history = selectors.endpoint_instance_history(endpoint)
    pending = list(endpoint.pending_config.variants.all()) if endpoint.pending_config else []
    return render(
        request,
        "frontend/endpoints/detail.html",
        {
            "endpoint": endpoint,
            "colour": status_colour(endpoint.status),
            "unserved": selectors.endpoint_unserved(endpoint),
            "served": [_served(v) for v in endpoint.config.variants.all()],
            "pending_served": [_served(v) for v in pending],
            "instances": [
                {
                    "row": instance,
                    "colour": INSTANCE_COLOURS.get(instance.status, "gray"),
                    "current": instance.config_id == endpoint.config_id,
                }
                for instance in instances
            ],
            "instance_history": [
                {
                    "row": move,
                    "from_colour": INSTANCE_COLOURS.get(move.from_status, "gray"),
                    "from_label": INSTANCE_LABELS.get(move.from_status, move.from_status),
                    "colour": INSTANCE_COLOURS.get(move.to_status, "gray"),
                    "label": INSTANCE_LABELS.get(move.to_status, move.to_status),
                }
                for move in history
            ],
            "events": [
                {"row": event, "colour": status_colour(event.to_status) if event.to_status else ""}
                for event in events
            ],
            "traffic": traffic,
            "charts": charts,
            "traffic_minutes": TRAFFIC_MINUTES,
            "can_delete": endpoint_delete_refusal(endpoint=endpoint, actor=request.user) is None,
            "can_invoke": allows(request, team, Action.INVOKE),
            "update_form": update_form,
            "update_note": update_refusal.message
            if isinstance(update_refusal, Conflict) and update_form is None
            else "",
            "invocation_path": f"/endpoints/{endpoint.name}/invocations",
            "try_token_minutes": TRY_IT_TOKEN_MINUTES,
            "live_config": {
                **_vocabulary(),
                "endpoint": endpoint.pk,
                "name": endpoint.name,
                "team": team.slug,
                "api": f"{reverse('api-endpoint', args=[endpoint.name])}?team={team.slug}",
                "traffic": reverse("endpoint-traffic", args=[endpoint.name]),
                "list": reverse("endpoints"),
                "status": endpoint.status,
            },
        },
        status=status,
    )


@require_GET
def endpoint_detail(request: AuthedRequest, name: str) -> HttpResponse:
    return _detail(request, _endpoint_or_404(request, name))


@never_cache
@require_GET
def endpoint_traffic_view(request: AuthedRequest, name: str) -> JsonResponse:
    """The page's traffic figures and totals, drawn again by its script when the data plane
    announces new statistics (`endpoint.traffic` on /ws/events)."""
    traffic, charts = _traffic_charts(_endpoint_or_404(request, name))
    return JsonResponse(
        {
            "totals": traffic["totals"],
            "figures": {chart["key"]: chart["figure"] for chart in charts},
        }
    )


@require_POST
def endpoint_update_view(request: AuthedRequest, name: str) -> HttpResponse:
    endpoint = _endpoint_or_404(request, name)
    team = endpoint.team
    form = UpdateForm(request.POST, packages=_deployable_refs(request, team))
    if not form.is_valid():
        return _detail(request, endpoint, update_form=form, status=400)
    try:
        package = package_from_ref(team=team, ref=form.cleaned_data["model"])
        endpoint_update_package(  # all or nothing: a refusal leaves no model or config
            endpoint=endpoint,
            actor=request.user,
            package=package,
            instance_type=form.cleaned_data["instance_type"],
            instance_count=form.cleaned_data["instance_count"],
        )
    except StudioloError as error:
        add_endpoint_error(form, error)
        return _detail(request, endpoint, update_form=form, status=error.status)
    messages.success(
        request, f"Updating “{endpoint.name}” to {package.group.name}/{package.version}."
    )
    return redirect("endpoint-detail", name=endpoint.name)


@require_POST
def endpoint_delete_view(request: AuthedRequest, name: str) -> HttpResponse:
    endpoint = _endpoint_or_404(request, name)
    try:
        endpoint_delete(endpoint=endpoint, actor=request.user)
    except StudioloError as error:
        messages.error(request, error.message)
        return redirect("endpoint-detail", name=endpoint.name)
    messages.success(request, f"Deleting “{endpoint.name}”: its instances are being stopped.")
    return redirect("endpoints")


@never_cache
@require_POST
def endpoint_try_token(request: AuthedRequest, name: str) -> JsonResponse:
    """A short-lived API token for the page's "try it" console, returned once.

    The data plane takes bearer tokens only (no cookies, so no CSRF on the prediction path);
    the console gets a token of the signed-in user that expires in TRY_IT_TOKEN_MINUTES and
    then calls the data plane like any client would. This view is a POST behind Django's CSRF
    check, so another site cannot make a signed-in browser mint one. Minting purges the user's
    dead try-it tokens, so they do not pile up in Settings → API tokens.
    """
    endpoint = _endpoint_or_404(request, name)
    if not allows(request, endpoint.team, Action.INVOKE):
        return JsonResponse(
            {
                "error": {
                    "code": "permission_denied",
                    "message": "your role does not allow invoking endpoints",
                    "field": None,
                }
            },
            status=403,
        )
    try:
        token, secret = try_token_create(user=request.user)
    except StudioloError as error:
        body = {"error": {"code": error.code, "message": error.message, "field": error.field}}
        return JsonResponse(body, status=error.status)
    expires_at = token.expires_at.isoformat() if token.expires_at else None
    return JsonResponse({"token": secret, "expires_at": expires_at})


# --- deploy a package --------------------------------------------------------------------


def _package_or_404(request: AuthedRequest, name: str, version: int) -> ModelPackage:
    team = current_team(request)
    if team is None:
        raise Http404("no team")
    try:
        return package_for_user(request.user, team=team.slug, group=name, version=version)
    except NotFound as exc:
        raise Http404(exc.message) from exc


@require_http_methods(["GET", "POST"])
def model_package_deploy(request: AuthedRequest, name: str, version: int) -> HttpResponse:
    package = _package_or_404(request, name, version)
    team = package.group.team
    status = 200
    if request.method == "POST":
        form = DeployForm(request.POST)
        if form.is_valid():
            endpoint_name = form.cleaned_data["name"].strip()
            try:
                # All or nothing: a refused deployment leaves no model or config behind;
                # the deploy task is sent when it commits.
                endpoint = endpoint_deploy_package(
                    team=team,
                    actor=request.user,
                    name=endpoint_name,
                    package=package,
                    instance_type=form.cleaned_data["instance_type"],
                    instance_count=form.cleaned_data["instance_count"],
                )
            except StudioloError as error:
                add_endpoint_error(form, error)
                status = error.status
            else:
                messages.success(
                    request,
                    f"Deploying {package.group.name}/{package.version} to “{endpoint.name}”.",
                )
                return redirect("endpoint-detail", name=endpoint.name)
        else:
            status = 400
    else:
        form = DeployForm(initial={"name": f"{package.group.name}-v{package.version}"[:63]})
    return render(
        request,
        "frontend/endpoints/deploy.html",
        {
            "form": form,
            "package": package,
            "group": package.group,
            "deploy_refusal": deploy_refusal(package),
            "can_deploy": allows(request, team, Action.DEPLOY),
            "approval_colour": APPROVAL_COLOURS.get(package.approval_status, "gray"),
        },
        status=status,
    )
