"""Read queries for accounts. Team scoping for every other app starts here."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser, User
from django.db.models import Q, QuerySet
from django.utils import timezone

from studio.accounts.models import ApiToken, Membership, Team, TokenPurpose
from studio.errors import NotFound


def teams_for_user(user: AbstractBaseUser | AnonymousUser) -> QuerySet[Team]:
    if not user.is_authenticated:
        return Team.objects.none()
    return Team.objects.filter(memberships__user_id=user.pk)


def note_member_role(team: Team, user_id: Any, role: str | None) -> None:
    """Keep on this team instance the user's role, read in the same query that loaded the
    team (a selector that joins the membership row): the permission check that follows in
    this request reads it instead of asking again. Only the instance carries it, so it lasts
    as long as the request that loaded it."""
    roles: dict[Any, str | None] = team.__dict__.setdefault("_member_roles", {})
    roles[user_id] = role


def noted_member_role(team: Team, user_id: Any) -> tuple[bool, str | None]:
    """(whether a role was noted on this instance for the user, that role)."""
    roles = team.__dict__.get("_member_roles")
    if roles is None or user_id not in roles:
        return False, None
    return True, roles[user_id]


def team_for_user(user: AbstractBaseUser | AnonymousUser, slug: str) -> Team:
    """The team named `slug` if the user belongs to it; NotFound otherwise (no leaks)."""
    if "\x00" in slug:  # no slug holds one, and PostgreSQL refuses it in a query
        raise NotFound(f"team {slug!r} not found", field="team")
    team = teams_for_user(user).filter(slug=slug).first()
    if team is None:
        raise NotFound(f"team {slug!r} not found", field="team")
    return team


def in_team[QS: QuerySet[Any]](
    queryset: QS, user: AbstractBaseUser | AnonymousUser, slug: str | None
) -> QS:
    """A list narrowed to `?team=<slug>`: a team the user is not in is a 404, as any of its
    objects would be (an empty list would say the team exists and hide the mistake)."""
    if not slug:
        return queryset
    return queryset.filter(team=team_for_user(user, slug))


def default_team_for_user(user: AbstractBaseUser | AnonymousUser) -> Team | None:
    return teams_for_user(user).order_by("memberships__created_at", "slug").first()


def memberships_for_user(user: AbstractBaseUser | AnonymousUser) -> QuerySet[Membership]:
    if not user.is_authenticated:
        return Membership.objects.none()
    return Membership.objects.filter(user_id=user.pk).select_related("team")


def members_of_team(team: Team) -> QuerySet[Membership]:
    return Membership.objects.filter(team=team).select_related("user")


def user_by_username(username: str) -> User | None:
    """An active user by name (administration and team management look people up so)."""
    return User.objects.filter(username=username, is_active=True).first()


def dead_try_tokens_q(now: datetime) -> Q:
    """Try-it tokens that can never work again: expired or revoked."""
    return Q(purpose=TokenPurpose.TRY_IT) & (Q(expires_at__lte=now) | Q(revoked_at__isnull=False))


def tokens_for_user(user: AbstractBaseUser | AnonymousUser) -> QuerySet[ApiToken]:
    """The user's tokens, without the try-it console's dead ones (expired or revoked: they
    can never work again, and the beat deletes them soon)."""
    if not user.is_authenticated:
        return ApiToken.objects.none()
    return ApiToken.objects.filter(user_id=user.pk).exclude(dead_try_tokens_q(timezone.now()))
