"""Studiolo: a self-hosted ML studio."""

from __future__ import annotations

# The Celery app must exist before any task is sent, so `shared_task`s bind to it (and its
# Redis broker) in the web process as well as in workers.
from studio.celery import app as celery_app

__all__ = ["celery_app"]
