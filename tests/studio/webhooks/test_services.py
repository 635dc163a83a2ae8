"""Creating, changing and deleting webhooks; emitting events to the right ones."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.db import transaction

from studio.audit.models import AuditEvent
from studio.errors import PermissionDenied, ValidationError
from studio.webhooks import events, services, tasks
from studio.webhooks.models import Webhook, WebhookDelivery
from tests.factories import make_user
from tests.studio.webhooks.support import make_admin_team, make_webhook

pytestmark = pytest.mark.django_db

URL = "https://hooks.example.com/studiolo"


def test_create_generates_a_secret_and_is_audited() -> None:
    team, admin = make_admin_team()
    webhook, secret = services.webhook_create(
        team=team, actor=admin, url=URL, events=["job.status_changed"]
    )
    assert secret.startswith("whsec_")
    assert len(secret) > 40
    assert webhook.secret == secret
    assert webhook.created_by == admin
    assert webhook.active is True
    event = AuditEvent.objects.get(action="webhook.created", object_id=str(webhook.pk))
    assert event.details == {"url": URL, "events": ["job.status_changed"]}
    assert secret not in str(event.details)


def test_create_keeps_a_given_secret_and_refuses_a_short_one() -> None:
    team, admin = make_admin_team()
    given = "my-own-secret-of-sufficient-length"
    _, secret = services.webhook_create(team=team, actor=admin, url=URL, events=["*"], secret=given)
    assert secret == given
    with pytest.raises(ValidationError) as error:
        services.webhook_create(team=team, actor=admin, url=URL, events=["*"], secret="short")
    assert error.value.field == "secret"


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.com/hook",
        "file:///etc/passwd",
        "javascript:alert(1)",
        "http://",
        "https:///path-only",
        "example.com/hook",
        "http://exa mple.com/",
        "http://example.com:99999/",
        "https://example.com/" + "a" * 2000,
        "",
    ],
)
def test_urls_other_than_http_with_a_host_are_refused(url: str) -> None:
    team, admin = make_admin_team()
    with pytest.raises(ValidationError) as error:
        services.webhook_create(team=team, actor=admin, url=url, events=["*"])
    assert error.value.field == "url"
    assert not Webhook.objects.exists()


@pytest.mark.parametrize("chosen", [["job.finished"], [], ["*", "nope.nope"], "job.status_changed"])
def test_unknown_or_missing_event_types_are_refused(chosen: Any) -> None:
    team, admin = make_admin_team()
    with pytest.raises(ValidationError) as error:
        services.webhook_create(team=team, actor=admin, url=URL, events=chosen)
    assert error.value.field == "events"


def test_only_admins_create_webhooks() -> None:
    team, _ = make_admin_team()
    scientist = make_user(team, role="scientist")
    with pytest.raises(PermissionDenied):
        services.webhook_create(team=team, actor=scientist, url=URL, events=["*"])


def test_update_changes_only_what_is_given_and_audits_it() -> None:
    team, admin = make_admin_team()
    webhook, _ = services.webhook_create(team=team, actor=admin, url=URL, events=["*"])
    services.webhook_update(webhook=webhook, actor=admin, events=["job.status_changed"])
    services.webhook_update(webhook=webhook, actor=admin, active=False)
    services.webhook_update(webhook=webhook, actor=admin, active=False)  # no change, no event
    webhook.refresh_from_db()
    assert (webhook.url, webhook.events, webhook.active) == (URL, ["job.status_changed"], False)
    updates = AuditEvent.objects.filter(action="webhook.updated", object_id=str(webhook.pk))
    assert [e.details["changes"] for e in updates.order_by("pk")] == [
        {"events": ["job.status_changed"]},
        {"active": False},
    ]
    with pytest.raises(ValidationError) as error:
        services.webhook_update(webhook=webhook, actor=admin, url="gopher://example.com")
    assert error.value.field == "url"


def test_delete_removes_the_webhook_and_its_deliveries_and_is_audited() -> None:
    webhook = make_webhook(URL)
    admin = webhook.created_by
    services.webhooks_emit(team=webhook.team, event_type="job.status_changed", payload={})
    services.webhook_delete(webhook=webhook, actor=admin)
    assert not Webhook.objects.exists()
    assert not WebhookDelivery.objects.exists()
    assert AuditEvent.objects.filter(action="webhook.deleted").count() == 1


def test_emit_reaches_only_active_subscribed_webhooks_of_the_team() -> None:
    team, _ = make_admin_team()
    every = make_webhook(URL + "/all", events=["*"], team=team)
    jobs = make_webhook(URL + "/jobs", events=["job.status_changed"], team=team)
    packages = make_webhook(URL + "/packages", events=["model_package.created"], team=team)
    disabled = make_webhook(URL + "/off", events=["*"], team=team)
    services.webhook_update(webhook=disabled, actor=disabled.created_by, active=False)
    elsewhere = make_webhook(URL + "/other-team", events=["*"])

    sent = services.webhooks_emit(team=team, event_type="job.status_changed", payload={"job": 1})
    assert {d.webhook_id for d in sent} == {every.pk, jobs.pk}
    assert len({d.event_id for d in sent}) == 2  # one idempotency id per delivery
    assert all(d.status == "pending" and d.attempts == 0 for d in sent)

    sent = services.webhooks_emit(team=team, event_type="model_package.created", payload={})
    assert {d.webhook_id for d in sent} == {every.pk, packages.pk}
    assert not WebhookDelivery.objects.filter(webhook__in=[disabled, elsewhere]).exists()


def test_star_also_covers_event_types_registered_later() -> None:
    name = events.register_event_type("experiment.created_for_tests")
    webhook = make_webhook(URL, events=["*"])
    (delivery,) = services.webhooks_emit(team=webhook.team, event_type=name, payload={})
    assert delivery.event_type == name
    # ...and a registered type becomes subscribable by name.
    team, admin = make_admin_team()
    services.webhook_create(team=team, actor=admin, url=URL, events=[name])


def test_register_event_type_refuses_names_that_are_not_dotted_words() -> None:
    for bad in ["Job.Created", "job", "job..x", "*", "job.created "]:
        with pytest.raises(ValueError, match="event type"):
            events.register_event_type(bad)


def test_emitting_an_unregistered_type_is_a_programming_error() -> None:
    webhook = make_webhook(URL)
    with pytest.raises(ValueError, match="unregistered"):
        services.webhooks_emit(team=webhook.team, event_type="no.such_type", payload={})


@pytest.fixture
def sent_tasks(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Task messages that would reach the broker (`deliver.delay`), captured instead."""
    sent: list[int] = []
    record: Callable[[int], None] = sent.append
    monkeypatch.setattr(tasks.deliver, "delay", record)
    return sent


@pytest.mark.django_db(transaction=True)
def test_emit_in_a_rolled_back_transaction_sends_nothing(sent_tasks: list[int]) -> None:
    webhook = make_webhook(URL)

    def emit_then_fail() -> None:
        with transaction.atomic():
            services.webhooks_emit(team=webhook.team, event_type="job.status_changed", payload={})
            raise RuntimeError("the change fails after emitting")

    with pytest.raises(RuntimeError):
        emit_then_fail()
    assert sent_tasks == []
    assert not WebhookDelivery.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_emit_sends_one_task_per_delivery_after_commit(sent_tasks: list[int]) -> None:
    team, _ = make_admin_team()
    make_webhook(URL + "/a", team=team)
    make_webhook(URL + "/b", team=team)
    with transaction.atomic():
        deliveries = services.webhooks_emit(team=team, event_type="job.status_changed", payload={})
        assert sent_tasks == []  # not before the commit
    assert sorted(sent_tasks) == sorted(d.pk for d in deliveries)
