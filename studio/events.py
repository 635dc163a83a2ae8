"""Live team events over the channel layer (Redis), consumed by `/ws/events`.

Events are sent only after the transaction that caused them commits, so a browser never
hears of a change it cannot then read. Redis being down must not undo a state change: the
database is the source of truth, and a missed live event only means a page refreshes later.
"""

from __future__ import annotations

import logging
from typing import Any, TypedDict

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction
from django.utils import timezone

log = logging.getLogger(__name__)


class TeamEvent(TypedDict):
    type: str  # channels handler name: always "team.event"
    event: str  # e.g. "audit", "job.status"
    team: str
    at: str
    data: dict[str, Any]


def team_group(team_id: int) -> str:
    return f"team.{team_id}"


def _message(*, team_slug: str, event: str, data: dict[str, Any]) -> TeamEvent:
    return {
        "type": "team.event",
        "event": event,
        "team": team_slug,
        "at": timezone.now().isoformat(),
        "data": data,
    }


def publish_team_event(*, team_id: int, team_slug: str, event: str, data: dict[str, Any]) -> None:
    message = _message(team_slug=team_slug, event=event, data=data)
    transaction.on_commit(lambda: _send(team_group(team_id), message))


def send_team_event(*, team_id: int, team_slug: str, event: str, data: dict[str, Any]) -> None:
    """Send at once. Only for callers already past their commit (an on_commit callback, or a
    timer it started): there is no transaction left to wait for, and a timer thread must not
    open a database connection just to ask."""
    _send(team_group(team_id), _message(team_slug=team_slug, event=event, data=data))


def _send(group: str, message: TeamEvent) -> None:
    group_send(group, dict(message), what=message["event"])


def group_send(group: str, message: dict[str, Any], *, what: str) -> None:
    """Send `message` to a channel group now; Redis being down is logged (as `what`), not
    raised: the change it tells of is committed, and the database keeps the truth."""
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        async_to_sync(layer.group_send)(group, message)
    except Exception as exc:  # the state change already committed; a lost live event is acceptable
        log.warning("could not publish %s to %s: %s: %s", what, group, type(exc).__name__, exc)
