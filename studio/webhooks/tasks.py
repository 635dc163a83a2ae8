"""Celery tasks of the webhooks app: thin wrappers around `delivery.py`."""

from __future__ import annotations

import logging

from celery import shared_task

from studio.webhooks.delivery import TASK_TIME_LIMIT, deliveries_due, delivery_attempt

log = logging.getLogger(__name__)


@shared_task(
    name="webhooks.deliver",
    acks_late=True,  # a worker that dies mid-attempt leaves the message for another
    reject_on_worker_lost=True,
    ignore_result=True,
    time_limit=TASK_TIME_LIMIT,
)
def deliver(delivery_id: int, attempt: int | None = None) -> None:
    """Make one attempt; schedule the next one with a countdown when it failed."""
    outcome = delivery_attempt(delivery_id, attempt=attempt)
    if outcome.retry_in is None or outcome.attempt is None:
        return
    try:
        deliver.apply_async(
            args=[delivery_id], kwargs={"attempt": outcome.attempt + 1}, countdown=outcome.retry_in
        )
    except Exception as exc:  # broker down: the row stays pending and the sweep re-sends it
        log.warning("could not schedule webhook delivery %s retry: %s", delivery_id, exc)


@shared_task(name="webhooks.resend_due", ignore_result=True, time_limit=60)
def resend_due() -> None:
    """Re-send deliveries whose task message was lost (see `delivery.deliveries_due`)."""
    for delivery_id, attempt in deliveries_due():
        deliver.apply_async(args=[delivery_id], kwargs={"attempt": attempt})
