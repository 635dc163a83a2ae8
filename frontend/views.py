"""UI views: parse the request, call services and selectors, render. No rules of their own.

Errors raised by the services (`StudioloError`) become form errors or messages with the
error's status code, never a 500.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.contrib import messages
from django.contrib.auth.models import User
from django.db.models import Q
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from frontend.dashboard import dashboard_cards
from frontend.forms import (
    AUDIT_PAGE_SIZE,
    AuditFilterForm,
    MemberAddForm,
    RoleChangeForm,
    TokenCreateForm,
    add_service_error,
    encode_cursor,
)
from frontend.teams import current_membership, current_team, select_team, user_memberships
from studio.accounts.models import ApiToken, Team
from studio.accounts.roles import ROLE_ORDER, Action, role_allows
from studio.accounts.selectors import members_of_team, tokens_for_user, user_by_username
from studio.accounts.services import membership_set, require_permission, token_create, token_revoke
from studio.audit.selectors import AuditFilter, audit_events_for_user
from studio.errors import Conflict, NotFound, StudioloError

RECENT_ACTIVITY = 20
# The new token's secret rides in the session for exactly one page render (see `tokens`).
NEW_TOKEN_SESSION_KEY = "studiolo.new_token"  # noqa: S105 - a session key, not a secret


class AuthedRequest(HttpRequest):
    """LoginRequiredMiddleware guarantees a signed-in user on every view below."""

    user: User


# --- dashboard -------------------------------------------------------------------------


@require_GET
def dashboard(request: AuthedRequest) -> HttpResponse:
    team = current_team(request)
    context: dict[str, Any] = {"cards": [], "activity": []}
    if team is not None:
        context["cards"] = dashboard_cards(team, request.user)
        context["activity"] = list(
            audit_events_for_user(request.user, AuditFilter(team=team.slug))[:RECENT_ACTIVITY]
        )
    return render(request, "frontend/dashboard.html", context)


@require_POST
def team_switch(request: AuthedRequest) -> HttpResponse:
    team = select_team(request, request.POST.get("team", ""))
    if team is None:
        messages.error(request, "You are not a member of that team.")
    target = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        target = reverse("dashboard")
    return HttpResponseRedirect(target)


# --- audit -----------------------------------------------------------------------------


@require_GET
def audit(request: AuthedRequest) -> HttpResponse:
    teams = [membership.team for membership in user_memberships(request)]
    form = AuditFilterForm(request.GET or None, teams=teams)
    events: list[Any] = []
    older_url = None
    if not form.is_bound or form.is_valid():
        filters = form.audit_filter() if form.is_bound else AuditFilter()
        # The selector scopes to the user's teams; everything below only narrows it.
        queryset = audit_events_for_user(request.user, filters)
        cursor = form.cleaned_data.get("cursor") if form.is_bound else None
        if cursor is not None:
            # Keyset paging on the table's ordering (-created_at, -id): constant cost at
            # any depth and stable while new events arrive.
            created_at, event_id = cursor
            queryset = queryset.filter(
                Q(created_at__lt=created_at) | Q(created_at=created_at, id__lt=event_id)
            )
        events = list(queryset[: AUDIT_PAGE_SIZE + 1])
        if len(events) > AUDIT_PAGE_SIZE:
            events = events[:AUDIT_PAGE_SIZE]
            query = request.GET.copy()
            query["cursor"] = encode_cursor(events[-1].created_at, events[-1].pk)
            older_url = f"?{query.urlencode()}"
    return render(
        request,
        "frontend/audit.html",
        {
            "form": form,
            "events": events,
            "older_url": older_url,
            "paged": bool(request.GET.get("cursor")),
            "newest_url": _without_cursor(request),
        },
    )


def _without_cursor(request: HttpRequest) -> str:
    query = request.GET.copy()
    query.pop("cursor", None)
    return f"?{query.urlencode()}" if query else request.path


# --- settings: API tokens --------------------------------------------------------------


@dataclass(frozen=True)
class TokenRow:
    token: ApiToken
    state: str  # "active", "expired" or "revoked"


def _token_rows(user: User) -> list[TokenRow]:
    now = timezone.now()
    rows = []
    for token in tokens_for_user(user):
        if token.revoked_at is not None:
            state = "revoked"
        elif token.expires_at is not None and token.expires_at <= now:
            state = "expired"
        else:
            state = "active"
        rows.append(TokenRow(token=token, state=state))
    return rows


@require_http_methods(["GET", "POST"])
def tokens(request: AuthedRequest) -> HttpResponse:
    status = 200
    if request.method == "POST":
        form = TokenCreateForm(request.POST)
        if form.is_valid():
            try:
                token, secret = token_create(
                    user=request.user,
                    name=form.cleaned_data["name"],
                    expires_at=form.expires_at(),
                    actor=request.user,
                )
            except StudioloError as error:
                add_service_error(form, error)
                status = error.status
            else:
                # Post/redirect/get: the secret is shown by the next GET, then forgotten.
                request.session[NEW_TOKEN_SESSION_KEY] = {"name": token.name, "secret": secret}
                return redirect("settings-tokens")
        else:
            status = 400
    else:
        form = TokenCreateForm()
    new_token = request.session.pop(NEW_TOKEN_SESSION_KEY, None)
    response = render(
        request,
        "frontend/settings_tokens.html",
        {"form": form, "rows": _token_rows(request.user), "new_token": new_token},
        status=status,
    )
    if new_token is not None:
        # The secret is in this page: keep it out of any cache.
        response["Cache-Control"] = "no-store"
    return response


@require_POST
def token_revoke_view(request: AuthedRequest, token_id: int) -> HttpResponse:
    token = tokens_for_user(request.user).filter(pk=token_id).first()
    if token is None:
        messages.error(request, "That token does not exist.")
    elif token.revoked_at is not None:
        messages.info(request, f"Token “{token.name}” was already revoked.")
    else:
        try:
            token_revoke(token=token, actor=request.user)
        except StudioloError as error:
            messages.error(request, error.message)
        else:
            messages.success(request, f"Token “{token.name}” revoked. It no longer works.")
    return redirect("settings-tokens")


# --- settings: team --------------------------------------------------------------------


@require_http_methods(["GET", "POST"])
def team(request: AuthedRequest) -> HttpResponse:
    membership = current_membership(request)
    add_form = MemberAddForm()
    status = 200
    if membership is not None and request.method == "POST":
        operation = request.POST.get("op")
        try:
            if operation == "add":
                add_form = MemberAddForm(request.POST)
                if not add_form.is_valid():
                    status = 400
                else:
                    _member_add(request, membership.team, add_form)
                    return redirect("settings-team")
            elif operation == "change":
                change_form = RoleChangeForm(request.POST)
                if not change_form.is_valid():
                    messages.error(request, "Choose a valid role.")
                    status = 400
                else:
                    _role_change(request, membership.team, change_form)
                    return redirect("settings-team")
            else:
                status = 400
        except StudioloError as error:
            if operation == "add":
                add_service_error(add_form, error)
            else:
                messages.error(request, error.message)
            status = error.status
    members = list(members_of_team(membership.team)) if membership is not None else []
    return render(
        request,
        "frontend/settings_team.html",
        {
            "members": members,
            "can_manage": membership is not None
            and role_allows(membership.role, Action.MANAGE_TEAM),
            "add_form": add_form,
            "role_choices": [(role.value, role.label) for role in ROLE_ORDER],
            "matrix_roles": [role.label for role in ROLE_ORDER],
            "matrix": [
                {
                    "action": action.value,
                    "meaning": action.label,
                    "allowed": [role_allows(role, action) for role in ROLE_ORDER],
                }
                for action in Action
            ],
        },
        status=status,
    )


def _member_add(request: AuthedRequest, team: Team, form: MemberAddForm) -> None:
    # Permission first: a viewer must not learn which usernames exist.
    require_permission(user=request.user, team=team, action=Action.MANAGE_TEAM)
    username = form.cleaned_data["username"].strip()
    user = user_by_username(username)
    if user is None:
        raise NotFound(f"no user named {username!r}", field="username")
    if members_of_team(team).filter(user=user).exists():
        raise Conflict(
            f"{username} is already a member; change their role in the list", field="username"
        )
    membership_set(team=team, user=user, role=form.cleaned_data["role"], actor=request.user)
    messages.success(request, f"{username} added to {team.name} as {form.cleaned_data['role']}.")


def _role_change(request: AuthedRequest, team: Team, form: RoleChangeForm) -> None:
    require_permission(user=request.user, team=team, action=Action.MANAGE_TEAM)
    target = members_of_team(team).filter(pk=form.cleaned_data["membership"]).first()
    if target is None:
        raise NotFound("that member is not in this team")
    membership_set(team=team, user=target.user, role=form.cleaned_data["role"], actor=request.user)
    messages.success(
        request, f"{target.user.get_username()} is now {form.cleaned_data['role']} in {team.name}."
    )
