"""Who may do what in a team: the one permission check, raising (`require_permission`) or
not (`permission_refusal`, which the UI and the other apps' `*_refusal` checks ask)."""

from __future__ import annotations

from typing import cast

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser

from studio.accounts.models import Membership, Team
from studio.accounts.roles import Action, role_allows
from studio.accounts.selectors import noted_member_role
from studio.errors import NotFound, PermissionDenied, StudioloError

Actor = AbstractBaseUser | AnonymousUser | None


def membership_role(*, user: Actor, team: Team) -> str | None:
    """The user's role in the team (None: not a member), read from the database; or, when
    this team instance was loaded together with the user's membership row in this request
    (`studio.accounts.selectors.note_member_role`), that row's role."""
    if user is None or not user.is_authenticated:
        return None
    known, role = noted_member_role(team, user.pk)
    if known:
        return role
    return (
        Membership.objects.filter(team=team, user_id=user.pk).values_list("role", flat=True).first()
    )


def require_permission(*, user: Actor, team: Team, action: Action) -> str:
    """Return the user's role in the team, or raise `permission_refusal`'s answer."""
    role = membership_role(user=user, team=team)
    refusal = _role_refusal(role, team=team, action=action)
    if refusal is not None:
        raise refusal
    return cast(str, role)  # a role that allows the action is a role


def permission_refusal(*, user: Actor, team: Team, action: Action) -> StudioloError | None:
    """Why `user` may not do `action` in `team`, or None when they may. The one statement of
    the rule: `require_permission` raises the answer, the UI asks it which buttons to offer
    (and so do the other apps' `*_refusal` checks)."""
    return _role_refusal(membership_role(user=user, team=team), team=team, action=action)


def _role_refusal(role: str | None, *, team: Team, action: Action) -> StudioloError | None:
    # Non-members get NotFound rather than PermissionDenied: a user must not learn which
    # names exist in another team.
    if role is None:
        return NotFound(f"team {team.slug!r} not found")
    if not role_allows(role, action):
        return PermissionDenied(
            f"your role {role!r} in team {team.slug!r} does not allow {action.value}"
        )
    return None
