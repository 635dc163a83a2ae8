"""Read queries for webhooks, always scoped to one team."""

from __future__ import annotations

from django.db.models import QuerySet

from studio.accounts.models import Team
from studio.errors import NotFound
from studio.webhooks.models import Webhook, WebhookDelivery


def webhooks_of_team(team: Team) -> QuerySet[Webhook]:
    return Webhook.objects.filter(team=team).select_related("created_by")


def webhook_of_team(team: Team, webhook_id: int) -> Webhook:
    """A webhook of this team; NotFound for a missing id and for another team's webhook."""
    webhook = webhooks_of_team(team).filter(pk=webhook_id).first()
    if webhook is None:
        raise NotFound(f"webhook {webhook_id} not found in team {team.slug!r}", field="webhook")
    return webhook


def deliveries_of_webhook(webhook: Webhook) -> QuerySet[WebhookDelivery]:
    return WebhookDelivery.objects.filter(webhook=webhook).prefetch_related("attempt_log")
