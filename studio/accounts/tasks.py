"""Celery tasks of the accounts app: thin wrappers around its services."""

from __future__ import annotations

from celery import shared_task

from studio.accounts.login import login_throttles_purge
from studio.accounts.services import try_tokens_purge


@shared_task(name="accounts.purge_try_tokens", ignore_result=True, time_limit=60)
def purge_try_tokens() -> int:
    """Delete the try-it console's dead tokens (expired or revoked), audited."""
    return try_tokens_purge()


@shared_task(name="accounts.purge_login_throttles", ignore_result=True, time_limit=60)
def purge_login_throttles() -> int:
    """Delete failed-sign-in counts that count nothing any more (idle a day, not locked)."""
    return login_throttles_purge()
