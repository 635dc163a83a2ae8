"""The whole path through a real Celery worker: emit, commit, broker, retry by countdown."""

from __future__ import annotations

import time
from typing import Any

import pytest
from celery.contrib.testing.worker import start_worker
from django.db import transaction

from studio.celery import app
from studio.webhooks import services
from studio.webhooks.models import DeliveryStatus, WebhookDelivery
from tests.studio.webhooks.conftest import Receiver
from tests.studio.webhooks.support import make_webhook

pytestmark = pytest.mark.slow


def wait_for_final(delivery_id: int, timeout: float = 20.0) -> WebhookDelivery:
    deadline = time.monotonic() + timeout
    while True:
        delivery = WebhookDelivery.objects.get(pk=delivery_id)
        if delivery.status != DeliveryStatus.PENDING or time.monotonic() > deadline:
            return delivery
        time.sleep(0.05)


def test_flaky_receiver_is_delivered_through_a_real_worker(
    transactional_db: None, redis_available: None, receiver: Receiver, settings: Any
) -> None:
    settings.WEBHOOK_RETRY_DELAYS = (0.2, 0.2, 0.2)
    receiver.fail(2)
    webhook = make_webhook(receiver.url, events=["job.status_changed"])
    with start_worker(app, perform_ping_check=False, pool="solo", shutdown_timeout=15):
        with transaction.atomic():
            (delivery,) = services.webhooks_emit(
                team=webhook.team, event_type="job.status_changed", payload={"job": 1}
            )
        delivery = wait_for_final(delivery.pk)
    assert delivery.status == DeliveryStatus.DELIVERED
    assert delivery.attempts == 3
    assert [a.status_code for a in delivery.attempt_log.order_by("number")] == [500, 500, 200]
    assert {r.headers["X-Studiolo-Delivery"] for r in receiver.requests} == {str(delivery.event_id)}
    assert len(receiver.requests) == 3
