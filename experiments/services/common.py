"""What every experiments service shares: the actor type, time, permission checks."""

from __future__ import annotations

import time
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser, User
from django.utils import timezone

from experiments.models import Experiment, Lifecycle
from studio.accounts.roles import Action
from studio.accounts.services import require_permission
from studio.errors import ValidationError

Actor = AbstractBaseUser | AnonymousUser | None


def user_of(actor: Actor) -> User | None:
    return actor if isinstance(actor, User) else None


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def retention_cutoff(now: datetime | None = None) -> datetime:
    """Runs and experiments deleted at or before this moment are past their retention
    period: no longer restorable, due for the purge (`services.retention`)."""
    return (now or timezone.now()) - timedelta(days=settings.TRACKING_RETENTION_DAYS)


def require_tracking(*, actor: Actor, experiment: Experiment) -> None:
    """Writing into an experiment needs the `experiment.write` action in its team; non-members
    get NotFound (require_permission's rule: no leaks of other teams' names)."""
    require_permission(user=actor, team=experiment.team, action=Action.TRACK)


def require_active_experiment(experiment: Experiment) -> None:
    if experiment.lifecycle != Lifecycle.ACTIVE:
        raise ValidationError(
            f"experiment: {experiment.name!r} is deleted; restore it first", field="experiment"
        )
