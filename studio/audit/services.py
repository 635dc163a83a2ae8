"""Writing the audit log. Every service that changes state calls `audit_record`."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser, User
from django.db import models

from studio.accounts.models import Team
from studio.audit.models import AuditEvent
from studio.events import publish_team_event

SYSTEM_ACTOR = "system"


def audit_record(
    *,
    actor: AbstractBaseUser | AnonymousUser | None,
    action: str,
    target: models.Model | None = None,
    object_type: str | None = None,
    object_id: str | int | None = None,
    object_repr: str | None = None,
    team: Team | None = None,
    details: dict[str, Any] | None = None,
    actor_name: str = SYSTEM_ACTOR,
) -> AuditEvent:
    """Append one event. Call inside the service's transaction so both commit or neither.
    `actor_name` names an actor that is no user (a failed sign-in's is "anonymous")."""
    if target is not None:
        object_type = object_type or target._meta.label_lower
        object_id = object_id if object_id is not None else target.pk
        object_repr = object_repr if object_repr is not None else str(target)
    user = actor if isinstance(actor, User) else None
    event = AuditEvent.objects.create(
        actor=user,
        actor_name=user.get_username() if user is not None else actor_name,
        action=action,
        object_type=object_type or "",
        object_id="" if object_id is None else str(object_id),
        object_repr=(object_repr or "")[:200],
        team=team,
        details=details or {},
    )
    if team is not None:
        publish_team_event(
            team_id=team.pk,
            team_slug=team.slug,
            event="audit",
            data={
                "id": event.pk,
                "actor": event.actor_name,
                "action": event.action,
                "object_type": event.object_type,
                "object_id": event.object_id,
                "object_repr": event.object_repr,
            },
        )
    return event
