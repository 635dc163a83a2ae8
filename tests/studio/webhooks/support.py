"""Test data for the webhook tests, made through the services."""

from __future__ import annotations

from collections.abc import Sequence

from django.contrib.auth.models import User

from studio.accounts.models import Team
from studio.webhooks import services
from studio.webhooks.models import Webhook, WebhookDelivery
from tests.factories import make_team, make_user

SECRET = "whsec_test-secret-0123456789"


def make_admin_team(slug: str | None = None) -> tuple[Team, User]:
    team = make_team(slug)
    return team, make_user(team, role="admin")


def make_webhook(url: str, *, events: Sequence[str] = ("*",), team: Team | None = None) -> Webhook:
    if team is None:
        team, admin = make_admin_team()
    else:
        admin = make_user(team, role="admin")
    webhook, _ = services.webhook_create(
        team=team, actor=admin, url=url, events=list(events), secret=SECRET
    )
    return webhook


def emit_one(webhook: Webhook, event_type: str = "job.status_changed") -> WebhookDelivery:
    deliveries = services.webhooks_emit(
        team=webhook.team, event_type=event_type, payload={"job": 7, "status": "Completed"}
    )
    (delivery,) = (d for d in deliveries if d.webhook_id == webhook.pk)
    return delivery
