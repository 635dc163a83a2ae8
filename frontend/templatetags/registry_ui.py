"""Template helpers for registry links on other apps' pages (the job page's Register button)."""

from __future__ import annotations

from typing import Any

from django import template

from frontend.teams import user_memberships
from jobs.models import Job, JobStatus
from studio.accounts.roles import Action, role_allows

register = template.Library()


@register.simple_tag(takes_context=True)
def may_register_model(context: dict[str, Any], job: Job) -> bool:
    """A Completed job with a model, seen by someone whose role in its team may register."""
    if job.status != JobStatus.COMPLETED or not job.model_artifact_uri:
        return False
    request = context.get("request")
    if request is None:
        return False
    return any(
        m.team_id == job.team_id and role_allows(m.role, Action.REGISTER_MODEL)
        for m in user_memberships(request)
    )
