"""The one shape of every transition log: a job's statuses (`jobs.JobTransition`), a model
package's approval (`registry.ApprovalTransition`), an endpoint's history
(`endpoints.EndpointEvent`) and an endpoint instance's statuses
(`endpoints.InstanceTransition`).

Each is an append-only list of rows written by its object's one status writer, in the same
transaction as the change: from where to where, why, who, when. The same names everywhere let
the pages, the API (`studio.api.transitions.TransitionSerializer`) and readers treat them
alike. This is the kernel: every app may build on it, it imports none of them.
"""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser, User
from django.db import models

SYSTEM = "system"
ACTOR_LIMIT = 150  # a username's maximum length in Django


def actor_label(actor: AbstractBaseUser | AnonymousUser | str | None) -> str:
    """Who acted, for `actor_name`: a user's name; for the studio itself `system`, or
    `system: <component>` when the caller says which part of it (`system: health check`).
    Usernames hold no space or colon, so the two cannot be mistaken for each other."""
    if isinstance(actor, User):
        return actor.get_username()
    if isinstance(actor, str) and actor:
        return f"{SYSTEM}: {actor}"[:ACTOR_LIMIT]
    return SYSTEM


class TransitionLog(models.Model):
    """One row per change. `from_status` is "" for the row that records a creation, and both
    are "" for a row that records an event rather than a move (an endpoint's instance
    replaced)."""

    from_status = models.CharField(max_length=32, blank=True)
    to_status = models.CharField(max_length=32, blank=True)
    message = models.TextField(blank=True)  # why, in words for people
    actor_name = models.CharField(max_length=ACTOR_LIMIT)  # actor_label(): kept if the user goes
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        abstract = True
        ordering = ["created_at", "id"]
