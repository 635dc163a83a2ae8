"""The jobs card of the dashboard (`frontend.dashboard`): the team's active jobs, kept live."""

from __future__ import annotations

from django.contrib.auth.models import User
from django.urls import reverse

from frontend.dashboard import DashboardCard, dashboard_card
from jobs.models import ACTIVE_STATUSES
from jobs.selectors import jobs_for_user
from studio.accounts.models import Team


@dashboard_card(order=30)
def active_jobs_card(team: Team, user: User) -> DashboardCard:
    active = tuple(
        jobs_for_user(user)
        .filter(team=team, status__in=ACTIVE_STATUSES)
        .values_list("pk", flat=True)
    )
    return DashboardCard(
        key="jobs-active",
        label="Active jobs",
        value=len(active),
        href=f"{reverse('jobs')}?status=active",
        hint="pending, running or stopping",
        tracks="job.status",
        tracked_ids=active,
    )
