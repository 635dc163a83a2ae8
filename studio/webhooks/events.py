"""The event types a webhook can subscribe to.

A registry rather than a free-form string, so a typo in a subscription is a 400 when the
webhook is made instead of a webhook that silently never fires. Apps that emit events
register their types at import time (e.g. in `AppConfig.ready`) with `register_event_type`.
"""

from __future__ import annotations

import re

ALL_EVENTS = "*"  # a subscription to every type, present and future
TEST_EVENT = "webhook.test"  # sent by "test this webhook" to one webhook, whatever it subscribes to

_NAME = re.compile(r"^[a-z][a-z0-9_]*(?:\.[a-z][a-z0-9_]*)+$")

EVENT_TYPES: set[str] = {
    "model_package.created",
    "model_package.approval_changed",
    "endpoint.status_changed",
    "endpoint.model_rejected",
    "job.status_changed",
}


def register_event_type(name: str) -> str:
    """Make `name` (dotted lower-case, e.g. `experiment.created`) subscribable; idempotent."""
    if not _NAME.match(name):
        raise ValueError(
            f"event type {name!r}: expected dotted lower-case words like 'job.created'"
        )
    EVENT_TYPES.add(name)
    return name


def event_type_known(name: str) -> bool:
    return name in EVENT_TYPES
