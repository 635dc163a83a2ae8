"""Template helpers of the jobs pages."""

from __future__ import annotations

from django import template

from frontend.jobs.display import host_hue

register = template.Library()


@register.filter
def log_host_hue(host: str) -> int:
    """The colour number of a log line's host label (`log-host-<n>` in jobs.css)."""
    return host_hue(host)
