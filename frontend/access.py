"""Who is asking, and what they may do: the signed-in user of every UI view, and the one
question the pages ask before they offer a button or a form."""

from __future__ import annotations

from django.contrib.auth.models import User
from django.http import HttpRequest

from frontend.teams import user_memberships
from studio.accounts.models import Team
from studio.accounts.roles import Action
from studio.accounts.selectors import note_member_role
from studio.accounts.services import permission_refusal


class AuthedRequest(HttpRequest):
    """LoginRequiredMiddleware guarantees a signed-in user on every view below."""

    user: User


def allows(request: HttpRequest, team: Team | None, action: Action) -> bool:
    """Whether the signed-in user's role in `team` allows `action`: the accounts service's
    answer (`permission_refusal`). The role comes from the memberships the request has read
    already (the top bar needs them too), noted on this team instance, so asking costs no
    query."""
    if team is None:
        return False
    return permission_refusal(user=request.user, team=noted(request, team), action=action) is None


def noted(request: HttpRequest, team: Team) -> Team:
    """`team`, with the signed-in user's role in it noted on this instance from the
    memberships the request has read already: the services' checks asked about an object of
    this team next (`job_stop_refusal`, ...) read the role from there instead of a query."""
    role = next((m.role for m in user_memberships(request) if m.team_id == team.pk), None)
    note_member_role(team, request.user.pk, role)
    return team
