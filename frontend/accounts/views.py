"""The account pages: switching the session's team, Settings → API tokens and Settings →
Team (members and roles, the permission matrix).

Like every UI view: parse the request, call services and selectors, render; no rules of
their own. Errors raised by the services (`StudioloError`) become form errors or messages
with the error's status code, never a 500.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib import messages
from django.contrib.auth.models import User
from django.http import HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_http_methods, require_POST

from frontend.access import AuthedRequest, noted
from frontend.accounts.forms import MemberAddForm, RoleChangeForm, TokenCreateForm
from frontend.forms import add_service_error
from frontend.teams import current_membership, select_team
from studio.accounts.buckets import team_bucket
from studio.accounts.models import ApiToken
from studio.accounts.roles import ROLE_ORDER, Action, role_allows
from studio.accounts.selectors import members_of_team, tokens_for_user
from studio.accounts.services import (
    membership_add,
    membership_change_refusal,
    membership_role_change,
    token_create,
    token_revoke,
)
from studio.errors import StudioloError

# The new token's secret rides in the session for exactly one page render (see `tokens`).
NEW_TOKEN_SESSION_KEY = "studiolo.new_token"  # noqa: S105 - a session key, not a secret


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
                    added = membership_add(
                        team=membership.team,
                        username=add_form.cleaned_data["username"],
                        role=add_form.cleaned_data["role"],
                        actor=request.user,
                    )
                    messages.success(
                        request,
                        f"{added.user.get_username()} added to {membership.team.name} "
                        f"as {added.role}.",
                    )
                    return redirect("settings-team")
            elif operation == "change":
                change_form = RoleChangeForm(request.POST)
                if not change_form.is_valid():
                    messages.error(request, "Choose a valid role.")
                    status = 400
                else:
                    changed = membership_role_change(
                        team=membership.team,
                        membership_id=change_form.cleaned_data["membership"],
                        role=change_form.cleaned_data["role"],
                        actor=request.user,
                    )
                    messages.success(
                        request,
                        f"{changed.user.get_username()} is now {changed.role} "
                        f"in {membership.team.name}.",
                    )
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
            "bucket": team_bucket(membership.team) if membership is not None else "",
            "can_manage": membership is not None
            and membership_change_refusal(team=noted(request, membership.team), actor=request.user)
            is None,
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
