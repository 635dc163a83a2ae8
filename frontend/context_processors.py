from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from frontend.navigation import nav_links
from frontend.teams import current_membership, user_memberships


def studio(request: HttpRequest) -> dict[str, Any]:
    """The top bar and navigation: the user's teams, the current one, the nav links."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {"memberships": [], "current_team": None, "current_role": None, "nav_links": []}
    membership = current_membership(request)
    match = getattr(request, "resolver_match", None)
    return {
        "memberships": user_memberships(request),
        "current_team": membership.team if membership is not None else None,
        "current_role": membership.get_role_display() if membership is not None else None,
        "nav_links": nav_links(match.url_name if match is not None else None),
    }
