"""The one writer of an endpoint instance's status.

Only the fleet (`endpoints.services.fleet`) moves instances, on behalf of the part of the
studio that decided to: a deployment, a roll-out, the health check, healing, a deletion (the
actor of each row: `system: health check`). Every move is checked against
`INSTANCE_TRANSITIONS`, made by a compare-and-swap `UPDATE ... WHERE status = <from>` (a
removal by `DELETE ... WHERE status = <from>`: the row goes with its container), appended to
the endpoint's `InstanceTransition` log in the same transaction, and announced to the team
after the commit (`endpoint.instance`, which makes an open endpoint page read it again).
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from typing import Any

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db import transaction

from endpoints.models import (
    INSTANCE_TRANSITIONS,
    NEW_INSTANCE,
    Endpoint,
    EndpointConfig,
    EndpointInstance,
    InstanceStatus,
    InstanceTransition,
)
from endpoints.services.lifecycle import REASON_LIMIT, IllegalTransition
from studio.events import publish_team_event
from studio.transitions import actor_label


class Component(StrEnum):
    """The parts of the studio that move instances."""

    DEPLOYMENT = "deployment"
    ROLL_OUT = "roll-out"
    HEALTH_CHECK = "health check"
    HEALING = "healing"
    DELETION = "deletion"


Actor = AbstractBaseUser | AnonymousUser | Component


def instance_record(
    *,
    endpoint: Endpoint,
    config: EndpointConfig,
    variant_name: str,
    container_name: Callable[[EndpointInstance], str],
    actor: Actor,
    why: str,
) -> EndpointInstance:
    """A new instance, Starting, before its container starts (so that a container is never
    without a row); `container_name` names it once it has its id."""
    with transaction.atomic():
        instance = EndpointInstance.objects.create(
            endpoint=endpoint,
            config=config,
            variant_name=variant_name,
            status=InstanceStatus.STARTING,
        )
        instance.container_name = container_name(instance)
        EndpointInstance.objects.filter(pk=instance.pk).update(
            container_name=instance.container_name
        )
        _log(instance, NEW_INSTANCE, InstanceStatus.STARTING, actor, why)
    return instance


def instance_transition(
    *,
    instance: EndpointInstance,
    status: str,
    actor: Actor,
    why: str = "",
    expect: str | None = None,
    **fields: Any,
) -> bool:
    """Move `instance` to `status` (Removed deletes its row), writing `fields` in the same
    UPDATE. `expect` is the status the caller read and acts on; without it, the current one
    is read under a row lock (a removal, which happens whatever the instance was doing).

    Returns False, writing nothing, when the instance is no longer in `expect` or is gone:
    someone else moved it first. Raises IllegalTransition for a move the table refuses."""
    with transaction.atomic():
        current = expect
        if current is None:
            current = (
                EndpointInstance.objects.select_for_update()
                .filter(pk=instance.pk)
                .values_list("status", flat=True)
                .first()
            )
            if current is None:
                return False
        if status not in INSTANCE_TRANSITIONS.get(current, frozenset()):
            raise IllegalTransition(
                f"instance {instance.container_name}: cannot go from {current} to {status}",
                field="status",
            )
        row = EndpointInstance.objects.filter(pk=instance.pk, status=current)
        if status == InstanceStatus.REMOVED:
            moved = row.delete()[0]
        else:
            moved = row.update(status=status, **fields)
        if not moved:
            return False
        _log(instance, current, status, actor, why)
    instance.status = status
    for name, value in fields.items():
        setattr(instance, name, value)
    return True


def _log(instance: EndpointInstance, current: str, status: str, actor: Actor, why: str) -> None:
    endpoint = instance.endpoint
    label = actor_label(actor)
    InstanceTransition.objects.create(
        endpoint_id=endpoint.pk,
        instance_id=instance.pk,
        container_name=instance.container_name,
        variant_name=instance.variant_name,
        from_status=current,
        to_status=status,
        message=why[:REASON_LIMIT],
        actor_name=label,
    )
    publish_team_event(
        team_id=endpoint.team_id,
        team_slug=endpoint.team.slug,
        event="endpoint.instance",
        data={
            "id": endpoint.pk,
            "name": endpoint.name,
            "instance": instance.container_name,
            "from": current,
            "to": status,
            "message": why[:500],
            "actor": label,
        },
    )
