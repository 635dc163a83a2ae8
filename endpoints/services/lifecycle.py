"""Endpoints: create, update, delete, and the one writer of their status.

Users' requests are checked and recorded here, then handed to the `endpoints` worker queue
(`endpoints.services.fleet` does the container work) after the transaction commits. Every
status change goes through `endpoint_transition`: row-locked, checked against the transition
table, appended to the endpoint's events, audited, sent to webhooks and to the team's live
events.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser, User
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from endpoints.models import (
    ALLOWED_TRANSITIONS,
    BUSY_STATUSES,
    Endpoint,
    EndpointConfig,
    EndpointEvent,
    EndpointStatus,
)
from endpoints.services.models import (
    check_name,
    config_create_for_model,
    config_require_deployable,
    model_for_package,
)
from registry.models import ModelPackage
from studio.accounts.models import Team
from studio.accounts.roles import Action
from studio.accounts.services import permission_refusal, require_permission
from studio.audit.services import audit_record
from studio.errors import Conflict, NotFound, StudioloError, ValidationError
from studio.events import publish_team_event
from studio.transitions import actor_label
from studio.webhooks.services import webhooks_emit

Actor = AbstractBaseUser | AnonymousUser | None
REASON_LIMIT = 4000


class IllegalTransition(Conflict):
    pass


def endpoint_payload(endpoint: Endpoint) -> dict[str, Any]:
    return {
        "id": endpoint.pk,
        "name": endpoint.name,
        "team": endpoint.team.slug,
        "status": endpoint.status,
        "config": endpoint.config.name,
        "pending_config": endpoint.pending_config.name if endpoint.pending_config else None,
        "failure_reason": endpoint.failure_reason,
        "attention": endpoint.attention,
    }


def endpoint_event(*, endpoint: Endpoint, message: str, actor: Actor = None) -> None:
    """Something happened to the endpoint's instances (not a status change): recorded and
    shown live on the endpoint page."""
    EndpointEvent.objects.create(
        endpoint=endpoint, message=message[:REASON_LIMIT], actor_name=actor_label(actor)
    )
    publish_team_event(
        team_id=endpoint.team_id,
        team_slug=endpoint.team.slug,
        event="endpoint.instance",
        data={"id": endpoint.pk, "name": endpoint.name, "message": message[:500]},
    )


def endpoint_transition(
    *,
    endpoint_id: int,
    status: str,
    actor: Actor = None,
    message: str = "",
    expect: str | None = None,
    **fields: Any,
) -> Endpoint:
    """Move an endpoint to `status`. `expect` guards against acting on stale knowledge (the
    caller read the endpoint as `expect`); `fields` are written in the same UPDATE."""
    with transaction.atomic():
        endpoint = (
            # of=self: PostgreSQL cannot lock the nullable side of the pending_config join.
            Endpoint.objects.select_for_update(of=("self",))
            .select_related("team", "config", "pending_config")
            .get(pk=endpoint_id)
        )
        current = endpoint.status
        if (expect is not None and current != expect) or status not in ALLOWED_TRANSITIONS[current]:
            raise IllegalTransition(
                f"endpoint {endpoint.name}: cannot go from {current} to {status}", field="status"
            )
        if "failure_reason" in fields:
            fields["failure_reason"] = str(fields["failure_reason"])[:REASON_LIMIT]
        # updated_at by hand: a queryset update skips auto_now, and the fleet reads it as the
        # time of the last change (an operation not moving for long is resumed).
        updated = Endpoint.objects.filter(pk=endpoint_id, status=current).update(
            status=status, updated_at=timezone.now(), **fields
        )
        if updated != 1:
            raise IllegalTransition(f"endpoint {endpoint.name}: status changed concurrently")
        endpoint.refresh_from_db()
        EndpointEvent.objects.create(
            endpoint=endpoint,
            from_status=current,
            to_status=status,
            message=message[:REASON_LIMIT],
            actor_name=actor_label(actor),
        )
        payload = {**endpoint_payload(endpoint), "from": current, "message": message[:500]}
        webhooks_emit(team=endpoint.team, event_type="endpoint.status_changed", payload=payload)
        audit_record(
            actor=actor,
            action=f"endpoint.{status.lower()}",
            target=endpoint,
            team=endpoint.team,
            details={"from": current, "to": status, "message": message[:500]},
        )
        publish_team_event(
            team_id=endpoint.team_id,
            team_slug=endpoint.team.slug,
            event="endpoint.status",
            data={**payload, "actor": actor_label(actor)},
        )
    return endpoint


def _send(task_name: str, endpoint_id: int) -> None:
    from endpoints import tasks  # tasks import services; the reverse only at call time

    task = getattr(tasks, task_name)
    transaction.on_commit(lambda: task.delay(endpoint_id))


def endpoint_create(*, team: Team, actor: Actor, name: str, config: EndpointConfig) -> Endpoint:
    require_permission(user=actor, team=team, action=Action.DEPLOY)
    check_name(name)
    if config.team_id != team.pk:
        raise NotFound(f"config: endpoint config {config.name!r} not found", field="config")
    config_require_deployable(config)
    try:
        with transaction.atomic():
            endpoint = Endpoint.objects.create(
                team=team,
                name=name,
                config=config,
                status=EndpointStatus.CREATING,
                created_by=actor if isinstance(actor, User) else None,
            )
            EndpointEvent.objects.create(
                endpoint=endpoint,
                to_status=EndpointStatus.CREATING,
                message=f"Creating with config {config.name}",
                actor_name=actor_label(actor),
            )
            audit_record(
                actor=actor,
                action="endpoint.created",
                target=endpoint,
                team=team,
                details={"config": config.name},
            )
            publish_team_event(
                team_id=team.pk,
                team_slug=team.slug,
                event="endpoint.status",
                data={**endpoint_payload(endpoint), "from": None, "actor": actor_label(actor)},
            )
            _send("deploy_endpoint", endpoint.pk)
    except IntegrityError:
        raise ValidationError(
            f"name: an endpoint named {name!r} exists already", field="name"
        ) from None
    return endpoint


def endpoint_update(*, endpoint: Endpoint, actor: Actor, config: EndpointConfig) -> Endpoint:
    """Roll out `config`: its instances start and become healthy, traffic switches, the old
    ones drain and stop. A failed rollout leaves the old config serving."""
    require_permission(user=actor, team=endpoint.team, action=Action.DEPLOY)
    if config.team_id != endpoint.team_id:
        raise NotFound(f"config: endpoint config {config.name!r} not found", field="config")
    if config.pk == endpoint.config_id and endpoint.status != EndpointStatus.FAILED:
        raise ValidationError(
            f"config: endpoint {endpoint.name} already serves {config.name}", field="config"
        )
    busy = _busy_refusal(endpoint)
    if busy is not None:
        raise busy
    config_require_deployable(config)
    with transaction.atomic():
        endpoint = endpoint_transition(
            endpoint_id=endpoint.pk,
            status=EndpointStatus.UPDATING,
            actor=actor,
            expect=endpoint.status,
            message=f"Updating to config {config.name}",
            pending_config=config,
        )
        _send("roll_out_endpoint", endpoint.pk)
    return endpoint


def endpoint_update_refusal(*, endpoint: Endpoint, actor: Actor) -> StudioloError | None:
    """Why `actor` may not roll a new config out to `endpoint` now, or None when they may:
    the role, and an endpoint that is not busy (Creating, Updating, Deleting). The one
    statement of these rules: `endpoint_update` raises the answer (besides its checks of the
    config), the UI asks it whether to offer the update form."""
    return permission_refusal(user=actor, team=endpoint.team, action=Action.DEPLOY) or (
        _busy_refusal(endpoint)
    )


def _busy_refusal(endpoint: Endpoint) -> Conflict | None:
    if endpoint.status == EndpointStatus.DELETING:
        return Conflict(f"endpoint {endpoint.name} is being deleted", field="status")
    if endpoint.status in BUSY_STATUSES:
        return Conflict(
            f"endpoint {endpoint.name} is {endpoint.status}; wait until it is InService",
            field="status",
        )
    return None


def endpoint_delete_refusal(*, endpoint: Endpoint, actor: Actor) -> StudioloError | None:
    """Why `actor` may not delete `endpoint` now, or None when they may: the role, and an
    endpoint not being deleted already (any other status may be deleted). `endpoint_delete`
    raises the answer, the UI asks it whether to offer Delete."""
    refusal = permission_refusal(user=actor, team=endpoint.team, action=Action.DEPLOY)
    if refusal is None and endpoint.status == EndpointStatus.DELETING:
        return Conflict(f"endpoint {endpoint.name} is being deleted already", field="status")
    return refusal


def endpoint_delete(*, endpoint: Endpoint, actor: Actor) -> Endpoint:
    """Stop serving and remove the instances; the endpoint row goes when they are gone (the
    audit log keeps its history). Allowed in any status except Deleting."""
    refusal = endpoint_delete_refusal(endpoint=endpoint, actor=actor)
    if refusal is not None:
        raise refusal
    with transaction.atomic():
        endpoint = endpoint_transition(
            endpoint_id=endpoint.pk,
            status=EndpointStatus.DELETING,
            actor=actor,
            message="Deletion requested",
        )
        _send("delete_endpoint", endpoint.pk)
    return endpoint


def endpoint_deploy_package(
    *,
    team: Team,
    actor: Actor,
    name: str,
    package: ModelPackage,
    instance_type: str,
    instance_count: int,
) -> Endpoint:
    """Deploy one package on N instances (model and config made on the way), all or
    nothing: a refusal leaves no model or config behind."""
    check_name(name)
    with transaction.atomic():
        model = model_for_package(team=team, actor=actor, package=package)
        config = config_create_for_model(
            team=team,
            actor=actor,
            endpoint_name=name,
            model=model,
            instance_type=instance_type,
            instance_count=instance_count,
        )
        return endpoint_create(team=team, actor=actor, name=name, config=config)


def endpoint_update_package(
    *,
    endpoint: Endpoint,
    actor: Actor,
    package: ModelPackage,
    instance_type: str,
    instance_count: int,
) -> Endpoint:
    """Roll the endpoint out to one package on N instances, all or nothing."""
    with transaction.atomic():
        model = model_for_package(team=endpoint.team, actor=actor, package=package)
        config = config_create_for_model(
            team=endpoint.team,
            actor=actor,
            endpoint_name=endpoint.name,
            model=model,
            instance_type=instance_type,
            instance_count=instance_count,
        )
        return endpoint_update(endpoint=endpoint, actor=actor, config=config)


def endpoints_serving_package(package: ModelPackage) -> list[Endpoint]:
    """Endpoints whose current or pending config has a variant serving the package."""
    return list(
        Endpoint.objects.filter(
            Q(config__variants__model__package=package)
            | Q(pending_config__variants__model__package=package)
        )
        .exclude(status=EndpointStatus.DELETING)
        .select_related("team", "config", "pending_config")
        .distinct()
    )


def endpoints_flag_rejected_package(*, package: ModelPackage, actor: Actor, comment: str) -> int:
    """Called by the registry when a package is rejected: every endpoint serving it is marked
    (it keeps serving: cutting traffic is a decision for people, not a side effect), the
    change is recorded, and the team is told live and through webhooks. Returns how many."""
    flagged = 0
    for endpoint in endpoints_serving_package(package):
        note = (
            f"Model package {package.group.name}/{package.version} was rejected by "
            f"{actor_label(actor)}: {comment}. This endpoint still serves it; update it to an "
            "approved model or delete it."
        )
        Endpoint.objects.filter(pk=endpoint.pk).update(attention=note[:REASON_LIMIT])
        endpoint.attention = note
        EndpointEvent.objects.create(
            endpoint=endpoint, message=note[:REASON_LIMIT], actor_name=actor_label(actor)
        )
        payload = {
            **endpoint_payload(endpoint),
            "package": f"{package.group.name}/{package.version}",
        }
        webhooks_emit(team=endpoint.team, event_type="endpoint.model_rejected", payload=payload)
        audit_record(
            actor=actor,
            action="endpoint.model_rejected",
            target=endpoint,
            team=endpoint.team,
            details={"package": payload["package"], "comment": comment},
        )
        publish_team_event(
            team_id=endpoint.team_id,
            team_slug=endpoint.team.slug,
            event="endpoint.attention",
            data={**payload, "actor": actor_label(actor)},
        )
        flagged += 1
    return flagged
