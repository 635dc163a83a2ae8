"""Reading the audit log: always scoped to the teams the reader belongs to."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import Q, QuerySet

from studio.accounts.selectors import in_team, teams_for_user
from studio.audit.models import AuditEvent


@dataclass(frozen=True)
class AuditFilter:
    team: str | None = None
    actor: str | None = None
    action: str | None = None  # exact, or a prefix ending in "." ("token." matches token.*)
    object_type: str | None = None
    object_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None


def audit_events_for_user(
    user: AbstractBaseUser | AnonymousUser, filters: AuditFilter | None = None
) -> QuerySet[AuditEvent]:
    """Events of the user's teams, plus the team-less events about the user: those they
    caused, and those on their own account or tokens (made by an administrator or `system`)."""
    filters = filters or AuditFilter()
    about_me = Q(actor_id=user.pk) | Q(details__user=user.get_username())
    events = AuditEvent.objects.filter(
        Q(team__in=teams_for_user(user)) | (Q(team__isnull=True) & about_me)
    ).select_related("team")
    events = in_team(events, user, filters.team)
    if filters.actor:
        events = events.filter(actor_name=filters.actor)
    if filters.action:
        if filters.action.endswith("."):
            events = events.filter(action__startswith=filters.action)
        else:
            events = events.filter(action=filters.action)
    if filters.object_type:
        events = events.filter(object_type=filters.object_type)
    if filters.object_id:
        events = events.filter(object_id=filters.object_id)
    if filters.since:
        events = events.filter(created_at__gte=filters.since)
    if filters.until:
        events = events.filter(created_at__lt=filters.until)
    return events
