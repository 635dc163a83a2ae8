"""Reads of endpoints, configs and models, scoped to the reader's teams; traffic series."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any, TypeVar

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import Count, Model, Prefetch, Q, QuerySet
from django.utils import timezone

from endpoints.metrics import histogram_merge, percentile
from endpoints.models import (
    SERVING_STATUSES,
    Endpoint,
    EndpointConfig,
    EndpointEvent,
    EndpointInstance,
    InstanceStatus,
    InstanceTransition,
    InvocationStat,
    ProductionVariant,
    ServingModel,
)
from registry.models import ModelPackage
from studio.accounts.models import Team
from studio.accounts.selectors import default_team_for_user, team_for_user, teams_for_user
from studio.errors import NotFound, ValidationError

User = AbstractBaseUser | AnonymousUser
M = TypeVar("M", bound=Model)
EVENTS_SHOWN = 100
HISTORY_SHOWN = 100  # moves of an endpoint's instances shown on its page and in its API


def team_or_default(user: User, slug: str | None) -> Team:
    """The named team (the user must belong to it), else the user's first team."""
    if slug:
        return team_for_user(user, slug)
    team = default_team_for_user(user)
    if team is None:
        raise ValidationError("team: you are not a member of any team", field="team")
    return team


def _one_by_name[M: Model](queryset: QuerySet[M], *, name: str, team: str | None, what: str) -> M:
    """Names are unique per team: look among the user's teams, and ask for the team only
    when the name is ambiguous."""
    if team:
        queryset = queryset.filter(team__slug=team)
    found = list(queryset.filter(name=name)[:2])
    if not found:
        raise NotFound(f"{what} {name!r} not found", field="name")
    if len(found) > 1:
        raise ValidationError(
            f"team: several of your teams have an {what} named {name!r}; say which team",
            field="team",
        )
    return found[0]


def variants_queryset() -> QuerySet[ProductionVariant]:
    return ProductionVariant.objects.select_related("model__package__group").order_by("id")


def endpoints_for_user(user: User) -> QuerySet[Endpoint]:
    return (
        Endpoint.objects.filter(team__in=teams_for_user(user))
        .select_related("team", "config", "pending_config", "created_by")
        .annotate(
            instance_count=Count("instances", distinct=True),
            healthy_count=Count(
                "instances",
                filter=Q(instances__status=InstanceStatus.HEALTHY),
                distinct=True,
            ),
        )
    )


def endpoint_unserved(endpoint: Endpoint) -> bool:
    """Meant to serve, but no instance is healthy: every invocation gets 503 meanwhile (its
    instances are being replaced, or the Docker engine is away). For endpoints read through
    `endpoints_for_user`, which counts the healthy instances."""
    return endpoint.status in SERVING_STATUSES and getattr(endpoint, "healthy_count", 1) == 0


def endpoint_for_user(user: User, name: str, *, team: str | None = None) -> Endpoint:
    queryset = endpoints_for_user(user).prefetch_related(
        Prefetch("config__variants", queryset=variants_queryset()),
        Prefetch("pending_config__variants", queryset=variants_queryset()),
        Prefetch("instances", queryset=EndpointInstance.objects.order_by("id")),
    )
    return _one_by_name(queryset, name=name, team=team, what="endpoint")


def endpoint_events(endpoint: Endpoint, limit: int = EVENTS_SHOWN) -> list[EndpointEvent]:
    """The latest events, oldest first."""
    latest = list(
        EndpointEvent.objects.filter(endpoint=endpoint).order_by("-created_at", "-id")[:limit]
    )
    return latest[::-1]


def endpoint_instance_history(
    endpoint: Endpoint, limit: int = HISTORY_SHOWN
) -> list[InstanceTransition]:
    """The latest moves of the endpoint's instances (those gone included), newest first."""
    return list(
        InstanceTransition.objects.filter(endpoint=endpoint).order_by("-created_at", "-id")[:limit]
    )


def configs_for_user(user: User) -> QuerySet[EndpointConfig]:
    return (
        EndpointConfig.objects.filter(team__in=teams_for_user(user))
        .select_related("team", "created_by")
        .prefetch_related(Prefetch("variants", queryset=variants_queryset()))
    )


def config_for_user(user: User, name: str, *, team: str | None = None) -> EndpointConfig:
    return _one_by_name(configs_for_user(user), name=name, team=team, what="endpoint config")


def models_for_user(user: User) -> QuerySet[ServingModel]:
    return ServingModel.objects.filter(team__in=teams_for_user(user)).select_related(
        "team", "package__group", "created_by"
    )


def model_for_user(user: User, name: str, *, team: str | None = None) -> ServingModel:
    return _one_by_name(models_for_user(user), name=name, team=team, what="model")


def endpoints_serving_package_for_user(user: User, package_id: int) -> QuerySet[Endpoint]:
    """For a package's lineage: the endpoints whose current config serves it."""
    return (
        endpoints_for_user(user).filter(config__variants__model__package_id=package_id).distinct()
    )


def package_serving_endpoints(package: ModelPackage) -> list[dict[str, Any]]:
    """The last link of a package's lineage (registered with the registry at start-up): the
    team's endpoints whose current config serves the package, by name."""
    return [
        {"name": name, "status": status}
        for name, status in Endpoint.objects.filter(
            team_id=package.group.team_id, config__variants__model__package=package
        )
        .distinct()
        .order_by("name")
        .values_list("name", "status")
    ]


def endpoint_traffic(
    endpoint: Endpoint,
    *,
    minutes: int = 60,
    bucket_seconds: int = 60,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Per variant, per time bucket: invocations, 4xx, 5xx and latency percentiles (p50, p90,
    p99 from the merged histograms, max exact). Buckets without traffic are left out."""
    now = now or timezone.now()
    since = now - timedelta(minutes=minutes)
    rows = InvocationStat.objects.filter(endpoint=endpoint, bucket_start__gte=since).values_list(
        "variant_name",
        "bucket_start",
        "count",
        "errors_4xx",
        "errors_5xx",
        "latency_sum_ms",
        "latency_max_ms",
        "latency_histogram",
    )
    grouped: dict[str, dict[datetime, dict[str, Any]]] = defaultdict(dict)
    totals = {"count": 0, "errors_4xx": 0, "errors_5xx": 0}
    for variant, start, count, e4, e5, lat_sum, lat_max, histogram in rows:
        epoch = int(start.timestamp())
        bucket = datetime.fromtimestamp(epoch - epoch % bucket_seconds, tz=start.tzinfo)
        point = grouped[variant].setdefault(
            bucket,
            {"count": 0, "errors_4xx": 0, "errors_5xx": 0, "sum": 0.0, "max": 0.0, "hist": {}},
        )
        point["count"] += count
        point["errors_4xx"] += e4
        point["errors_5xx"] += e5
        point["sum"] += lat_sum
        point["max"] = max(point["max"], lat_max)
        point["hist"] = histogram_merge(point["hist"], histogram)
        totals["count"] += count
        totals["errors_4xx"] += e4
        totals["errors_5xx"] += e5
    variants: dict[str, list[dict[str, Any]]] = {}
    for variant, points in sorted(grouped.items()):
        series = []
        for bucket in sorted(points):
            point = points[bucket]
            series.append(
                {
                    "at": bucket.isoformat(),
                    "count": point["count"],
                    "errors_4xx": point["errors_4xx"],
                    "errors_5xx": point["errors_5xx"],
                    "mean_ms": point["sum"] / point["count"] if point["count"] else None,
                    "p50_ms": percentile(point["hist"], 50),
                    "p90_ms": percentile(point["hist"], 90),
                    "p99_ms": percentile(point["hist"], 99),
                    "max_ms": point["max"],
                }
            )
        variants[variant] = series
    return {
        "since": since.isoformat(),
        "bucket_seconds": bucket_seconds,
        "totals": totals,
        "variants": variants,
    }


def staged_model_uris() -> list[str]:
    """The artifacts whose staged model an endpoint may still serve from a worker: those of
    every endpoint's current and pending config, and of any config it still runs instances
    of (an old config draining). A deleted endpoint's are not in it."""
    configs = (
        Q(variants__config__in=Endpoint.objects.values("config"))
        | Q(
            variants__config__in=Endpoint.objects.filter(pending_config__isnull=False).values(
                "pending_config"
            )
        )
        | Q(variants__config__in=EndpointInstance.objects.values("config"))
    )
    return list(
        ServingModel.objects.filter(configs).values_list("artifact_uri", flat=True).distinct()
    )
