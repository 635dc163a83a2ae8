"""The registry's card of the dashboard (`frontend.dashboard`): packages waiting for the
reader's review."""

from __future__ import annotations

from typing import Any

from django.urls import reverse

from frontend.dashboard import DashboardCard, dashboard_card
from registry import selectors
from studio.accounts.models import Team
from studio.accounts.roles import Action
from studio.accounts.services import permission_refusal


@dashboard_card(order=40)
def review_card(team: Team, user: Any) -> DashboardCard | None:
    """Shown to those who may approve in the team: the packages waiting for their decision."""
    if permission_refusal(user=user, team=team, action=Action.APPROVE_MODEL) is not None:
        return None
    pending = selectors.packages_awaiting_review(user).filter(group__team=team).count()
    return DashboardCard(
        key="models-review",
        label="Waiting for my review",
        value=pending,
        href=reverse("model-review"),
        hint="model packages to approve or reject",
    )
