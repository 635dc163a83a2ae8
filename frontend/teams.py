"""The team the UI is looking at: one per session, chosen in the top bar.

Every view reads it through `current_team(request)` so that the rule "the session's team if
the user still belongs to it, else the user's first team" lives in one place.
"""

from __future__ import annotations

from django.http import HttpRequest

from studio.accounts.models import Membership, Team
from studio.accounts.selectors import memberships_for_user

SESSION_KEY = "studiolo.team"
_CACHE_ATTR = "_studiolo_memberships"


def user_memberships(request: HttpRequest) -> list[Membership]:
    """The signed-in user's memberships (with their teams), ordered by team slug.

    Cached on the request: the top bar, the context processor and the view all ask.
    """
    cached: list[Membership] | None = getattr(request, _CACHE_ATTR, None)
    if cached is None:
        user = request.user
        cached = (
            list(memberships_for_user(user).order_by("team__slug")) if user.is_authenticated else []
        )
        setattr(request, _CACHE_ATTR, cached)
    return cached


def current_membership(request: HttpRequest) -> Membership | None:
    memberships = user_memberships(request)
    if not memberships:
        return None
    selected = request.session.get(SESSION_KEY)
    for membership in memberships:
        if membership.team.slug == selected:
            return membership
    # The default matches `default_team_for_user`: the team the user joined first.
    return min(memberships, key=lambda m: (m.created_at, m.team.slug))


def current_team(request: HttpRequest) -> Team | None:
    membership = current_membership(request)
    return membership.team if membership is not None else None


def select_team(request: HttpRequest, slug: str) -> Team | None:
    """Make `slug` the session's team; None when the user is not a member of it."""
    for membership in user_memberships(request):
        if membership.team.slug == slug:
            request.session[SESSION_KEY] = slug
            return membership.team
    return None
