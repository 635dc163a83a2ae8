"""Delivering to a real receiver on 127.0.0.1, one attempt per call (no broker involved)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from studio.audit.models import AuditEvent
from studio.webhooks import delivery as delivery_module
from studio.webhooks import targets
from studio.webhooks.delivery import delivery_attempt
from studio.webhooks.models import DeliveryStatus, Webhook, WebhookDelivery
from tests.studio.webhooks.conftest import HANG, Receiver
from tests.studio.webhooks.support import SECRET, emit_one, make_webhook
from tests.support import free_port

pytestmark = pytest.mark.django_db

DOCS = Path(__file__).resolve().parents[3] / "docs" / "webhooks.md"


def documented_verifier() -> Callable[..., bool]:
    """The verification snippet from docs/webhooks.md, executed as written."""
    blocks = re.findall(r"```python\n(.*?)```", DOCS.read_text(), flags=re.DOTALL)
    (source,) = (block for block in blocks if "def verify_studiolo_webhook" in block)
    namespace: dict[str, Any] = {}
    exec(source, namespace)  # noqa: S102 - our own documentation, checked on purpose
    verifier: Callable[..., bool] = namespace["verify_studiolo_webhook"]
    return verifier


def test_signature_verifies_with_the_documented_recipe(receiver: Receiver) -> None:
    delivery = emit_one(make_webhook(receiver.url))
    delivery_attempt(delivery.pk)
    (request,) = receiver.requests
    verify = documented_verifier()
    assert verify(SECRET, request.headers, request.body)


def test_signature_fails_with_a_wrong_secret_or_a_changed_body(receiver: Receiver) -> None:
    delivery = emit_one(make_webhook(receiver.url))
    delivery_attempt(delivery.pk)
    (request,) = receiver.requests
    verify = documented_verifier()
    assert not verify("whsec_some-other-secret-000", request.headers, request.body)
    assert not verify(SECRET, request.headers, request.body.replace(b"Completed", b"Failed"))


def test_delivery_posts_the_documented_headers_and_body(receiver: Receiver) -> None:
    webhook = make_webhook(receiver.url)
    delivery = emit_one(webhook)
    outcome = delivery_attempt(delivery.pk)
    assert outcome.status == DeliveryStatus.DELIVERED
    (request,) = receiver.requests
    assert request.path == "/hook"
    headers = request.headers
    assert headers["Content-Type"] == "application/json"
    assert headers["User-Agent"] == "Studiolo-Webhooks/1"
    assert headers["X-Studiolo-Event"] == "job.status_changed"
    assert headers["X-Studiolo-Delivery"] == str(delivery.event_id)
    assert re.fullmatch(r"\d{10}", headers["X-Studiolo-Timestamp"])
    assert re.fullmatch(r"sha256=[0-9a-f]{64}", headers["X-Studiolo-Signature"])
    body = json.loads(request.body)
    assert body == {
        "id": str(delivery.event_id),
        "type": "job.status_changed",
        "team": webhook.team.slug,
        "created_at": delivery.created_at.isoformat(),
        "data": {"job": 7, "status": "Completed"},
    }
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("delivered", 1, 200)
    assert delivery.next_attempt_at is None


def test_flaky_receiver_is_delivered_on_the_third_attempt_with_one_idempotency_id(
    receiver: Receiver,
) -> None:
    receiver.fail(2)
    delivery = emit_one(make_webhook(receiver.url))
    outcomes = [delivery_attempt(delivery.pk) for _ in range(3)]
    assert [o.status for o in outcomes] == ["pending", "pending", "delivered"]
    assert [o.retry_in is not None for o in outcomes] == [True, True, False]
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.DELIVERED
    assert delivery.attempts == 3
    log = list(delivery.attempt_log.order_by("number"))
    assert [(a.number, a.status_code) for a in log] == [(1, 500), (2, 500), (3, 200)]
    assert log[0].error.startswith("HTTP 500")
    assert log[2].error == ""
    ids = {r.headers["X-Studiolo-Delivery"] for r in receiver.requests}
    assert ids == {str(delivery.event_id)}
    assert len({r.body for r in receiver.requests}) == 1  # the same event, byte for byte


def test_always_failing_receiver_fails_after_the_last_attempt_on_the_backoff_schedule(
    receiver: Receiver,
) -> None:
    receiver.fail(100, status=503)
    delivery = emit_one(make_webhook(receiver.url))
    delays = delivery_module.DEFAULT_RETRY_DELAYS
    assert delivery_module.max_attempts() == len(delays) + 1 == 6
    for number, delay in enumerate(delays, start=1):
        outcome = delivery_attempt(delivery.pk)
        assert outcome.attempt == number
        assert outcome.status == DeliveryStatus.PENDING
        delivery.refresh_from_db()
        attempt = delivery.attempt_log.get(number=number)
        assert delivery.next_attempt_at == attempt.at + timedelta(seconds=delay)
        assert outcome.retry_in is not None
        assert delay - 5 < outcome.retry_in <= delay
    last = delivery_attempt(delivery.pk)
    assert (last.attempt, last.status, last.retry_in) == (6, DeliveryStatus.FAILED, None)
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.FAILED
    assert delivery.next_attempt_at is None
    assert delivery.last_status_code == 503
    assert [a.status_code for a in delivery.attempt_log.all()] == [503] * 6
    # A failed delivery is final: another call sends nothing.
    assert delivery_attempt(delivery.pk).attempt is None
    assert len(receiver.requests) == 6


def test_retry_schedule_comes_from_settings(receiver: Receiver, settings: Any) -> None:
    settings.WEBHOOK_RETRY_DELAYS = (1, 2)
    receiver.fail(3)
    delivery = emit_one(make_webhook(receiver.url))
    assert [delivery_attempt(delivery.pk).status for _ in range(3)] == [
        "pending",
        "pending",
        "failed",
    ]
    gaps = list(delivery.attempt_log.values_list("number", flat=True))
    assert gaps == [1, 2, 3]


def test_timeout_is_recorded_as_an_attempt(receiver: Receiver, settings: Any) -> None:
    settings.WEBHOOK_TIMEOUT_SECONDS = 0.3
    receiver.answer(HANG)
    delivery = emit_one(make_webhook(receiver.url))
    outcome = delivery_attempt(delivery.pk)
    assert outcome.status == DeliveryStatus.PENDING
    (attempt,) = delivery.attempt_log.all()
    assert attempt.status_code is None
    assert attempt.error.startswith("timed out after 0.3 s")
    assert 250 <= attempt.duration_ms < 3000


def test_connection_refused_is_recorded_and_retried() -> None:
    delivery = emit_one(make_webhook(f"http://127.0.0.1:{free_port()}/hook"))
    outcome = delivery_attempt(delivery.pk)
    assert outcome.status == DeliveryStatus.PENDING
    assert outcome.retry_in is not None
    (attempt,) = delivery.attempt_log.all()
    assert attempt.status_code is None
    assert attempt.error.startswith("ConnectError")


def test_gone_disables_the_webhook_and_stops_its_deliveries(receiver: Receiver) -> None:
    receiver.answer(410)
    webhook = make_webhook(receiver.url)
    first = emit_one(webhook)
    second = emit_one(webhook)
    assert delivery_attempt(first.pk).status == DeliveryStatus.FAILED
    webhook.refresh_from_db()
    assert webhook.active is False
    event = AuditEvent.objects.get(action="webhook.disabled", object_id=str(webhook.pk))
    assert event.actor_name == "system"
    assert "410" in event.details["reason"]
    # The other queued delivery is not sent to a receiver that said it is gone.
    assert delivery_attempt(second.pk).attempt is None
    second.refresh_from_db()
    assert second.status == DeliveryStatus.FAILED
    assert second.last_error == "the webhook is disabled"
    assert len(receiver.requests) == 1


def test_a_delivered_delivery_is_not_sent_again(receiver: Receiver) -> None:
    delivery = emit_one(make_webhook(receiver.url))
    assert delivery_attempt(delivery.pk).status == DeliveryStatus.DELIVERED
    again = delivery_attempt(delivery.pk)
    assert (again.attempt, again.status) == (None, DeliveryStatus.DELIVERED)
    assert len(receiver.requests) == 1


def test_a_duplicated_task_message_for_one_attempt_sends_once(receiver: Receiver) -> None:
    receiver.fail(1)
    delivery = emit_one(make_webhook(receiver.url))
    assert delivery_attempt(delivery.pk, attempt=1).attempt == 1
    assert delivery_attempt(delivery.pk, attempt=1).attempt is None  # redelivered message
    assert delivery_attempt(delivery.pk, attempt=2).status == DeliveryStatus.DELIVERED
    assert len(receiver.requests) == 2


def test_a_missing_delivery_is_a_no_op() -> None:
    outcome = delivery_attempt(987654)
    assert (outcome.attempt, outcome.status) == (None, None)


def test_redirects_are_not_followed(receiver: Receiver) -> None:
    receiver.answer(302)
    delivery = emit_one(make_webhook(receiver.url))
    assert delivery_attempt(delivery.pk).status == DeliveryStatus.PENDING
    (attempt,) = delivery.attempt_log.all()
    assert attempt.status_code == 302
    assert "redirects are not followed" in attempt.error
    assert [r.path for r in receiver.requests] == ["/hook"]


def test_a_stored_non_http_url_is_refused_without_sending() -> None:
    webhook = make_webhook("http://127.0.0.1:9/hook")
    # Written around the service, as a bad migration or a manual edit might.
    Webhook.objects.filter(pk=webhook.pk).update(url="file:///etc/passwd")
    delivery = emit_one(webhook)
    outcome = delivery_attempt(delivery.pk)
    assert outcome.status == DeliveryStatus.FAILED
    delivery.refresh_from_db()
    assert "only http:// and https://" in delivery.last_error


def test_overdue_deliveries_are_listed_for_the_sweep(receiver: Receiver) -> None:
    receiver.fail(1)
    webhook = make_webhook(receiver.url)
    lost = emit_one(webhook)  # its task message never arrived
    retried = emit_one(webhook)
    delivery_attempt(retried.pk)
    past = lost.created_at - timedelta(minutes=5)
    WebhookDelivery.objects.filter(pk=lost.pk).update(next_attempt_at=past)
    assert delivery_module.deliveries_due() == [(lost.pk, 1)]


def test_a_webhook_deleted_during_an_attempt_is_not_an_error(
    receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    delivery = emit_one(make_webhook(receiver.url))
    real_post = delivery_module._post

    def post_then_delete(url: str, **kwargs: Any) -> Any:
        response = real_post(url, **kwargs)
        Webhook.objects.all().delete()
        return response

    monkeypatch.setattr(delivery_module, "_post", post_then_delete)
    outcome = delivery_attempt(delivery.pk)
    assert (outcome.attempt, outcome.status, outcome.retry_in) == (1, None, None)
    assert len(receiver.requests) == 1


def test_a_loopback_receiver_is_refused_at_delivery_without_the_allow_list(
    receiver: Receiver, settings: Any
) -> None:
    webhook = make_webhook(receiver.url)  # created while the allow-list let it through
    settings.WEBHOOK_ALLOWED_HOSTS = ()
    delivery = emit_one(webhook)
    outcome = delivery_attempt(delivery.pk)
    assert outcome.status == DeliveryStatus.FAILED  # for good: no retry
    assert receiver.requests == []
    delivery.refresh_from_db()
    assert delivery.last_error.startswith("refused: url: 127.0.0.1 is a loopback address")
    (attempt,) = delivery.attempt_log.all()
    assert attempt.status_code is None


def test_a_name_resolving_to_loopback_at_delivery_is_refused(
    receiver: Receiver, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The name was public when the webhook was made; now its DNS answers 127.0.0.1.
    settings.WEBHOOK_ALLOWED_HOSTS = ()
    port = receiver.url.split(":")[2].split("/")[0]
    webhook = make_webhook(f"http://rebind.example.test:{port}/hook")
    monkeypatch.setattr(targets, "system_resolve", lambda host, port: ["127.0.0.1"])
    delivery = emit_one(webhook)
    assert delivery_attempt(delivery.pk).status == DeliveryStatus.FAILED
    assert receiver.requests == []
    delivery.refresh_from_db()
    assert "rebind.example.test (127.0.0.1) is a loopback address" in delivery.last_error


def test_the_request_goes_to_the_checked_address_without_a_second_lookup(
    receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Only our resolver knows the name: a second lookup by the HTTP client would fail.
    port = receiver.url.split(":")[2].split("/")[0]
    webhook = make_webhook(f"http://hooks.example.test:{port}/hook")
    lookups: list[str] = []

    def resolve(host: str, port: int) -> list[str]:
        lookups.append(host)
        return ["127.0.0.1"]

    monkeypatch.setattr(targets, "system_resolve", resolve)
    delivery = emit_one(webhook)
    assert delivery_attempt(delivery.pk).status == DeliveryStatus.DELIVERED
    assert lookups == ["hooks.example.test"]
    (request,) = receiver.requests
    assert request.headers["Host"] == f"hooks.example.test:{port}"


def test_an_internal_receivers_answer_is_not_kept(receiver: Receiver) -> None:
    receiver.answer(500)  # its body says "answer 500"
    delivery = emit_one(make_webhook(receiver.url))  # 127.0.0.1: allowed by the list only
    delivery_attempt(delivery.pk)
    (attempt,) = delivery.attempt_log.all()
    assert attempt.error == "HTTP 500"
    delivery.refresh_from_db()
    assert delivery.last_error == "HTTP 500"
