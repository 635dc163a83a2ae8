"""Template helpers for registry links on other apps' pages (the job page's Register button)."""

from __future__ import annotations

from typing import Any

from django import template

from frontend.access import noted
from jobs.models import Job
from registry.services.registration import registration_refusal

register = template.Library()


@register.simple_tag(takes_context=True)
def may_register_model(context: dict[str, Any], job: Job) -> bool:
    """Whether the registry would register this job's model for the reader now (a Completed
    job with a model, seen by someone whose role in its team may register): its answer."""
    request = context.get("request")
    if request is None:
        return False
    noted(request, job.team)
    return registration_refusal(job=job, actor=request.user) is None
