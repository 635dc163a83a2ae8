"""The endpoints card of the dashboard (`frontend.dashboard`): endpoints in service, and how
many need attention."""

from __future__ import annotations

from typing import Any

from django.urls import reverse

from endpoints import selectors
from endpoints.models import EndpointStatus
from frontend.dashboard import DashboardCard, dashboard_card
from studio.accounts.models import Team


@dashboard_card(order=50)
def endpoints_card(team: Team, user: Any) -> DashboardCard | None:
    """Endpoints in service, and how many need attention (a served package was rejected,
    or the endpoint failed). Hidden while the team has no endpoint."""
    statuses = list(
        selectors.endpoints_for_user(user)
        .filter(team=team)
        .values_list("status", "attention")
        .order_by()
    )
    if not statuses:
        return None
    in_service = sum(1 for status, _ in statuses if status == EndpointStatus.IN_SERVICE)
    attention = sum(1 for status, note in statuses if note or status == EndpointStatus.FAILED)
    return DashboardCard(
        key="endpoints",
        label="Endpoints in service",
        value=in_service,
        href=reverse("endpoints"),
        hint=f"{attention} need{'s' if attention == 1 else ''} attention"
        if attention
        else f"of {len(statuses)} endpoint{'s' if len(statuses) != 1 else ''}, none needs attention",
    )
