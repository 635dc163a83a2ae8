"""Installs whose delivery log kept receivers' answer bodies lose them on migrating."""

from __future__ import annotations

import uuid

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from tests.factories import make_team

BEFORE = [("webhooks", "0001_initial")]


@pytest.mark.django_db(transaction=True)
def test_kept_answer_bodies_are_dropped_and_status_codes_kept() -> None:
    executor = MigrationExecutor(connection)
    latest = executor.loader.graph.leaf_nodes()
    errors = {
        "HTTP 500: root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1": "HTTP 500",
        "HTTP 302: moved (redirects are not followed)": "HTTP 302 (redirects are not followed)",
        "HTTP 404": "HTTP 404",
        "ConnectError: [Errno 111] Connection refused": (
            "ConnectError: [Errno 111] Connection refused"
        ),
        "": "",
    }
    try:
        executor.migrate(BEFORE)
        old = executor.loader.project_state(BEFORE).apps
        webhook = old.get_model("webhooks", "Webhook").objects.create(
            team_id=make_team().pk, url="http://10.0.0.1/", secret="s" * 20, events=["*"]
        )
        for number, error in enumerate(errors, start=1):
            delivery = old.get_model("webhooks", "WebhookDelivery").objects.create(
                webhook=webhook, event_id=uuid.uuid4(), event_type="job.x", last_error=error
            )
            old.get_model("webhooks", "WebhookAttempt").objects.create(
                delivery=delivery, number=number, at=timezone.now(), error=error, duration_ms=1
            )
    finally:
        executor = MigrationExecutor(connection)
        executor.migrate(latest)

    new = executor.loader.project_state(latest).apps
    deliveries = new.get_model("webhooks", "WebhookDelivery").objects.order_by("pk")
    attempts = new.get_model("webhooks", "WebhookAttempt").objects.order_by("number")
    assert [d.last_error for d in deliveries] == list(errors.values())
    assert [a.error for a in attempts] == list(errors.values())
