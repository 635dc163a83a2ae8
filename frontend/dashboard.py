"""The dashboard page, and its count cards from a registry every part of the UI adds to.

A card provider is a function `(team, user) -> DashboardCard | None` registered with
`@dashboard_card(order=...)`. Providers read through their app's selectors (team-scoped, one
cheap query each) and return None to hide their card. A domain of the UI registers its
providers in its `cards` module, which `frontend.apps.FrontendConfig.ready()` imports, e.g.
`frontend/jobs/cards.py`:

    @dashboard_card(order=30)
    def active_jobs_card(team: Team, user: User) -> DashboardCard:
        return DashboardCard(key="jobs-active", label="Active jobs",
                             value=active_count(team), href=reverse("jobs"))
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.contrib.auth.models import User
from django.http import HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET

from frontend.access import AuthedRequest
from frontend.teams import current_team
from studio.accounts.models import Team
from studio.accounts.selectors import members_of_team, tokens_for_user
from studio.audit.selectors import AuditFilter, audit_events_for_user


@dataclass(frozen=True)
class DashboardCard:
    key: str  # stable, unique: the card's DOM id and what tests look for
    label: str
    value: int | str
    href: str | None = None  # where a click on the card leads
    hint: str = ""  # one short line under the number
    # A websocket event name ("audit", "job.status"...): each such event of the current
    # team adds one to the number on the page without a reload.
    increments_on: str | None = None
    # For a number that goes down as well as up (jobs running now): a websocket event name
    # whose events carry `data.id` and `data.terminal`. The page keeps the set of ids that
    # are not terminal, starting from `tracked_ids`, and shows its size.
    tracks: str | None = None
    tracked_ids: tuple[int, ...] = ()


CardProvider = Callable[[Team, User], DashboardCard | None]

_providers: dict[str, tuple[int, CardProvider]] = {}


def dashboard_card(order: int = 100) -> Callable[[CardProvider], CardProvider]:
    """Register a card provider; cards are shown by ascending `order`, then name.

    Re-registering the same function (a module imported twice) replaces it.
    """

    def register(provider: CardProvider) -> CardProvider:
        _providers[f"{provider.__module__}.{provider.__qualname__}"] = (order, provider)
        return provider

    return register


def dashboard_cards(team: Team, user: User) -> list[DashboardCard]:
    ordered = sorted(_providers.items(), key=lambda item: (item[1][0], item[0]))
    cards = [provider(team, user) for _, (_, provider) in ordered]
    return [card for card in cards if card is not None]


# --- the page ------------------------------------------------------------------------

RECENT_ACTIVITY = 20


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


# --- the cards of the studio itself ----------------------------------------------------


@dashboard_card(order=10)
def members_card(team: Team, user: User) -> DashboardCard:
    return DashboardCard(
        key="members",
        label="Members",
        value=members_of_team(team).count(),
        href=reverse("settings-team"),
        hint=f"in {team.name}",
    )


@dashboard_card(order=20)
def tokens_card(team: Team, user: User) -> DashboardCard:
    now = timezone.now()
    active = (
        tokens_for_user(user).filter(revoked_at__isnull=True).exclude(expires_at__lte=now).count()
    )
    return DashboardCard(
        key="tokens",
        label="Your active API tokens",
        value=active,
        href=reverse("settings-tokens"),
        hint="for the CLI and SDKs",
    )


@dashboard_card(order=90)
def audit_card(team: Team, user: User) -> DashboardCard:
    since = timezone.now() - timedelta(hours=24)
    count = audit_events_for_user(user, AuditFilter(team=team.slug, since=since)).count()
    return DashboardCard(
        key="audit-24h",
        label="Audit events",
        value=count,
        href=f"{reverse('audit')}?team={team.slug}",
        hint="in the last 24 hours",
        increments_on="audit",
    )
