"""How jobs look in the UI: status colours, the list's filter chips, durations.

Colours follow NetBox's status choices (cyan pending, blue running, green done, red failed,
grey stopped) and are named, not hex: the stylesheet maps `status-<colour>` to its palette,
and the pages hand the same mapping to jobs.js so live updates pick the same colour.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Q

from jobs.models import ACTIVE_STATUSES, JobStatus

STATUS_COLOURS: dict[str, str] = {
    JobStatus.PENDING: "cyan",
    JobStatus.IN_PROGRESS: "blue",
    JobStatus.STOPPING: "orange",
    JobStatus.COMPLETED: "green",
    JobStatus.FAILED: "red",
    JobStatus.STOPPED: "gray",
}


def status_colour(status: str) -> str:
    return STATUS_COLOURS.get(status, "gray")


@dataclass(frozen=True)
class StatusFilter:
    key: str  # the `status` query parameter; "" for all
    label: str
    statuses: frozenset[str]  # empty: no narrowing

    def q(self) -> Q:
        return Q(status__in=sorted(self.statuses)) if self.statuses else Q()


STATUS_FILTERS: tuple[StatusFilter, ...] = (
    StatusFilter("", "All", frozenset()),
    StatusFilter("active", "Active", frozenset(str(s) for s in ACTIVE_STATUSES)),
    StatusFilter("completed", "Completed", frozenset({str(JobStatus.COMPLETED)})),
    StatusFilter("failed", "Failed", frozenset({str(JobStatus.FAILED)})),
    StatusFilter("stopped", "Stopped", frozenset({str(JobStatus.STOPPED)})),
)
STATUS_FILTER_BY_KEY = {f.key: f for f in STATUS_FILTERS}


def format_duration(delta: timedelta | None) -> str:
    """`42s`, `3m 05s`, `2h 07m`, `3d 4h`: short, and precise where it matters."""
    if delta is None:
        return ""
    seconds = max(0, int(delta.total_seconds()))
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m {seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h {minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d {hours}h"


def elapsed(start: datetime | None, end: datetime | None, now: datetime) -> timedelta | None:
    """From `start` to `end`, or to `now` while there is no end yet."""
    if start is None:
        return None
    return (end or now) - start


# Host labels in the log of a job of several instances: six hues, cycled (algo-7 looks like
# algo-1). The label also says the host's name: colour only helps the eye follow a host.
HOST_HUES = 6


def host_hue(host: str) -> int:
    """1..HOST_HUES for `algo-<n>`; 0 (neutral) for anything else. jobs.js does the same."""
    prefix, _, number = host.rpartition("-")
    if prefix != "algo" or not number.isdigit() or int(number) < 1:
        return 0
    return (int(number) - 1) % HOST_HUES + 1
