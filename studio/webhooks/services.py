"""Every change to webhooks, with its audit event, and `webhooks_emit` for other apps.

Emitting only writes pending delivery rows and queues their tasks after commit: the HTTP
calls happen in a worker (`delivery.py`), never inside the emitter's transaction, so a slow
receiver cannot hold a database transaction open and a rolled-back change sends nothing.
"""

from __future__ import annotations

import secrets as secrets_module
from collections.abc import Iterable, Mapping
from functools import partial
from typing import Any

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser, User
from django.db import transaction
from django.utils import timezone

from studio.accounts.models import Team
from studio.accounts.roles import Action
from studio.accounts.services import require_permission
from studio.audit.services import audit_record
from studio.errors import Conflict, ValidationError
from studio.webhooks.events import ALL_EVENTS, EVENT_TYPES, TEST_EVENT, event_type_known
from studio.webhooks.models import Webhook, WebhookDelivery
from studio.webhooks.targets import url_validate

Actor = AbstractBaseUser | AnonymousUser | None

SECRET_PREFIX = "whsec_"  # noqa: S105 - a public marker that makes leaked secrets easy to scan for
MIN_SECRET_LENGTH = 16
MAX_SECRET_LENGTH = 200


# --- validation ------------------------------------------------------------------------


def _events_validate(events: Iterable[str]) -> list[str]:
    if isinstance(events, str) or not isinstance(events, Iterable):
        raise ValidationError("events: expected a list of event types", field="events")
    chosen: list[str] = []
    for name in events:
        if not isinstance(name, str) or (name != ALL_EVENTS and not event_type_known(name)):
            known = ", ".join(sorted(EVENT_TYPES))
            raise ValidationError(
                f"events: unknown event type {name!r}; expected '*' or one of {known}",
                field="events",
            )
        if name not in chosen:
            chosen.append(name)
    if not chosen:
        raise ValidationError("events: subscribe to at least one event type", field="events")
    # "*" already covers everything; keeping other names beside it would only mislead.
    return [ALL_EVENTS] if ALL_EVENTS in chosen else chosen


def _secret_validate(secret: str) -> str:
    if not MIN_SECRET_LENGTH <= len(secret) <= MAX_SECRET_LENGTH or not secret.isprintable():
        raise ValidationError(
            f"secret: {MIN_SECRET_LENGTH}-{MAX_SECRET_LENGTH} printable characters",
            field="secret",
        )
    return secret


def webhook_subscribes_to(webhook: Webhook, event_type: str) -> bool:
    return ALL_EVENTS in webhook.events or event_type in webhook.events


# --- webhooks --------------------------------------------------------------------------


def webhook_create(
    *, team: Team, actor: Actor, url: str, events: Iterable[str], secret: str | None = None
) -> tuple[Webhook, str]:
    """Create a webhook; returns it with its signing secret (generated when not given),
    which the API shows this once."""
    require_permission(user=actor, team=team, action=Action.MANAGE_TEAM)
    url = url_validate(url)
    chosen = _events_validate(events)
    secret = (
        _secret_validate(secret)
        if secret is not None
        else SECRET_PREFIX + secrets_module.token_urlsafe(32)
    )
    with transaction.atomic():
        webhook = Webhook.objects.create(
            team=team,
            url=url,
            secret=secret,
            events=chosen,
            created_by=actor if isinstance(actor, User) else None,
        )
        audit_record(
            actor=actor,
            action="webhook.created",
            target=webhook,
            team=team,
            details={"url": url, "events": chosen},
        )
    return webhook, secret


def webhook_update(
    *,
    webhook: Webhook,
    actor: Actor,
    url: str | None = None,
    events: Iterable[str] | None = None,
    active: bool | None = None,
) -> Webhook:
    """Change the URL, the subscribed events or the active flag; audits what changed."""
    require_permission(user=actor, team=webhook.team, action=Action.MANAGE_TEAM)
    changes: dict[str, Any] = {}
    if url is not None:
        url = url_validate(url)
        if url != webhook.url:
            changes["url"] = url
    if events is not None:
        chosen = _events_validate(events)
        if chosen != webhook.events:
            changes["events"] = chosen
    if active is not None and active != webhook.active:
        changes["active"] = active
    if not changes:
        return webhook
    with transaction.atomic():
        previous = {name: getattr(webhook, name) for name in changes}
        for name, value in changes.items():
            setattr(webhook, name, value)
        webhook.save(update_fields=list(changes))
        audit_record(
            actor=actor,
            action="webhook.updated",
            target=webhook,
            team=webhook.team,
            details={"changes": changes, "previous": previous},
        )
    return webhook


def webhook_delete(*, webhook: Webhook, actor: Actor) -> None:
    """Delete a webhook and its delivery log. Queued tasks find nothing and stop."""
    require_permission(user=actor, team=webhook.team, action=Action.MANAGE_TEAM)
    with transaction.atomic():
        audit_record(
            actor=actor,
            action="webhook.deleted",
            target=webhook,
            team=webhook.team,
            details={"url": webhook.url, "events": webhook.events},
        )
        webhook.delete()


def webhook_disable_gone(*, webhook: Webhook, status_code: int) -> bool:
    """The receiver said the URL is gone for good (410): stop sending to it.

    Conditional update, so two deliveries hearing 410 at once record one event. Returns
    whether this call disabled it. Call inside the transaction that records the attempt.
    """
    disabled = Webhook.objects.filter(pk=webhook.pk, active=True).update(active=False)
    if disabled:
        webhook.active = False
        audit_record(
            actor=None,
            action="webhook.disabled",
            target=webhook,
            team=webhook.team,
            details={"reason": f"the receiver answered {status_code} Gone", "url": webhook.url},
        )
    return bool(disabled)


# --- emitting --------------------------------------------------------------------------


def _delivery_queue(delivery: WebhookDelivery) -> None:
    from studio.webhooks.tasks import deliver

    # After commit (like `delay_on_commit`): a worker must find the row, and a rolled-back
    # change sends nothing. `robust`: the change has committed, so a broker outage is
    # logged rather than raised at the caller; the sweep re-sends the overdue delivery.
    transaction.on_commit(partial(deliver.delay, delivery.pk), robust=True)


def webhooks_emit(
    *, team: Team, event_type: str, payload: Mapping[str, Any]
) -> list[WebhookDelivery]:
    """Queue `event_type` for every active webhook of `team` subscribed to it.

    Call inside the transaction of the change the event describes. `payload` becomes the
    body's `data`; it must be JSON-serialisable (datetimes, UUIDs and decimals are fine).
    """
    if not event_type_known(event_type):
        # A programming error, not user input: the emitting app forgot register_event_type.
        raise ValueError(f"unregistered webhook event type {event_type!r}")
    deliveries: list[WebhookDelivery] = []
    with transaction.atomic():
        for webhook in Webhook.objects.filter(team=team, active=True).order_by("pk"):
            if webhook_subscribes_to(webhook, event_type):
                delivery = WebhookDelivery.objects.create(
                    webhook=webhook,
                    event_type=event_type,
                    payload=dict(payload),
                    next_attempt_at=timezone.now(),
                )
                _delivery_queue(delivery)
                deliveries.append(delivery)
    return deliveries


def webhook_test_send(*, webhook: Webhook, actor: Actor) -> WebhookDelivery:
    """Send a `webhook.test` event to this webhook only, whatever it subscribes to."""
    require_permission(user=actor, team=webhook.team, action=Action.MANAGE_TEAM)
    if not webhook.active:
        raise Conflict("webhook is disabled; enable it before testing it", field="active")
    user = actor if isinstance(actor, User) else None
    with transaction.atomic():
        delivery = WebhookDelivery.objects.create(
            webhook=webhook,
            event_type=TEST_EVENT,
            next_attempt_at=timezone.now(),
            payload={
                "webhook": webhook.pk,
                "requested_by": user.get_username() if user is not None else None,
                "message": "This is a test event from Studiolo.",
            },
        )
        _delivery_queue(delivery)
    return delivery
