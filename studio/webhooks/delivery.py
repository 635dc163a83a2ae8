"""Sending a delivery to its receiver: one attempt per call, then deliver, retry or give up.

Each call makes at most one HTTP request, outside any database transaction (a slow receiver
must not hold a transaction open), and records it as a `WebhookAttempt`. The delivery's
status has exactly this one writer, and every write is a conditional update on
(status=pending, attempts=n), so a duplicated task message can never send twice.

Retries are scheduled by the Celery task (`tasks.py`) from the returned outcome, so tests
and the sweep can drive attempts synchronously without a broker.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

import httpx
from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.utils import timezone

from studio.webhooks.models import DeliveryStatus, WebhookAttempt, WebhookDelivery
from studio.webhooks.services import webhook_disable_gone
from studio.webhooks.targets import PinnedTarget, TargetRefused, TargetUnresolved, target_resolve

log = logging.getLogger(__name__)

# Seconds to wait after attempt n before attempt n + 1; one attempt more than delays.
# Settings may override it (WEBHOOK_RETRY_DELAYS), tests shorten it that way.
DEFAULT_RETRY_DELAYS: tuple[float, ...] = (10, 30, 90, 300, 900)
DEFAULT_TIMEOUT_SECONDS = 10.0  # connect, write and read each (httpx), WEBHOOK_TIMEOUT_SECONDS
TASK_TIME_LIMIT = 60  # seconds; a receiver that drips bytes forever is cut off here
# While an attempt is in flight its row is leased this long; the sweep re-sends a delivery
# whose lease ran out (a worker died mid-attempt) or whose retry message was lost.
ATTEMPT_LEASE = timedelta(seconds=2 * TASK_TIME_LIMIT)
RESPONSE_EXCERPT_CHARS = 256  # of a failed answer's body, printable, kept in the log
RESPONSE_READ_BYTES = 1024  # read to make that excerpt; the rest is never read
USER_AGENT = "Studiolo-Webhooks/1"
SIGNATURE_SCHEME = "sha256"


def retry_delays() -> tuple[float, ...]:
    return tuple(getattr(settings, "WEBHOOK_RETRY_DELAYS", DEFAULT_RETRY_DELAYS))


def max_attempts() -> int:
    return len(retry_delays()) + 1


def request_timeout() -> float:
    return float(getattr(settings, "WEBHOOK_TIMEOUT_SECONDS", DEFAULT_TIMEOUT_SECONDS))


def signature(*, secret: str, timestamp: int, body: bytes) -> str:
    """`sha256=<hex HMAC-SHA256 of "<timestamp>.<body>">`; docs/webhooks.md shows the check."""
    mac = hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256)
    return f"{SIGNATURE_SCHEME}={mac.hexdigest()}"


def delivery_body(delivery: WebhookDelivery) -> bytes:
    """The same bytes on every attempt: only the timestamp header changes between them."""
    document = {
        "id": str(delivery.event_id),
        "type": delivery.event_type,
        "team": delivery.webhook.team.slug,
        "created_at": delivery.created_at.isoformat(),
        "data": delivery.payload,
    }
    return json.dumps(document, cls=DjangoJSONEncoder, separators=(",", ":")).encode()


def delivery_headers(delivery: WebhookDelivery, *, body: bytes, timestamp: int) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "X-Studiolo-Event": delivery.event_type,
        "X-Studiolo-Delivery": str(delivery.event_id),
        "X-Studiolo-Timestamp": str(timestamp),
        "X-Studiolo-Signature": signature(
            secret=delivery.webhook.secret, timestamp=timestamp, body=body
        ),
    }


@dataclass(frozen=True)
class AttemptOutcome:
    attempt: int | None  # the number of the attempt made; None when nothing was sent
    status: DeliveryStatus | None  # the delivery's status afterwards; None when not found
    retry_in: float | None = None  # seconds until the next attempt, when one is due


@dataclass(frozen=True)
class _Response:
    status_code: int | None
    error: str
    duration_ms: int


def response_excerpt(data: bytes) -> str:
    """At most RESPONSE_EXCERPT_CHARS printable characters of a receiver's answer, on one
    line: enough to tell a receiver's own error message, never a page of someone's data."""
    text = data.decode("utf-8", errors="replace")
    printable = "".join(ch if ch.isprintable() else " " for ch in text)
    return " ".join(printable.split())[:RESPONSE_EXCERPT_CHARS]


def _pinned_request(
    client: httpx.Client, target: PinnedTarget, *, body: bytes, headers: dict[str, str]
) -> httpx.Request:
    """A request to the checked address itself, not to a name the client would look up
    again: the URL's host is replaced by the address, and the name travels where the
    receiver expects it, in `Host` and, for https, in TLS's server name (which the
    certificate is verified against)."""
    url = httpx.URL(target.url)
    extensions = {"sni_hostname": url.raw_host.decode("ascii")} if url.scheme == "https" else {}
    return client.build_request(
        "POST",
        url.copy_with(host=target.address),
        content=body,
        headers={**headers, "Host": url.netloc.decode("ascii")},
        extensions=extensions,
    )


def _post(target: PinnedTarget, *, body: bytes, headers: dict[str, str]) -> _Response:
    timeout = request_timeout()
    started = time.monotonic()
    status_code: int | None = None
    error = ""
    try:
        # Redirects are not followed: a signed event must not be forwarded to a host the
        # team never configured (nor to one the policy would refuse), and a 3xx is reported
        # so they can fix the URL. Proxies from the environment are not used: the request
        # must go to the address that was checked.
        with httpx.Client(timeout=timeout, follow_redirects=False, trust_env=False) as client:
            request = _pinned_request(client, target, body=body, headers=headers)
            response = client.send(request, stream=True)
            try:
                status_code = response.status_code
                if not response.is_success:
                    error = f"HTTP {status_code}"
                    # An internal receiver (allowed by WEBHOOK_ALLOWED_HOSTS) gets its status
                    # recorded, nothing of its answer: other teams' admins may aim there too.
                    if not target.internal:
                        excerpt = response_excerpt(_read_some(response, RESPONSE_READ_BYTES))
                        error += f": {excerpt}" if excerpt else ""
                    if response.is_redirect:
                        error += " (redirects are not followed)"
            finally:
                response.close()
    except httpx.TimeoutException as exc:
        error = f"timed out after {timeout:g} s ({type(exc).__name__})"
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    duration_ms = int((time.monotonic() - started) * 1000)
    return _Response(status_code=status_code, error=error, duration_ms=duration_ms)


def _read_some(response: httpx.Response, limit: int) -> bytes:
    data = b""
    for chunk in response.iter_bytes():
        data += chunk
        if len(data) >= limit:
            break
    return data[:limit]


def delivery_attempt(delivery_id: int, *, attempt: int | None = None) -> AttemptOutcome:
    """Make the next attempt of a pending delivery and record it.

    `attempt` is the attempt number the caller means to make (task messages carry it); a
    message for an attempt already made, or a delivery no longer pending, sends nothing.
    Receiver failures never raise: they become attempt rows and retries.
    """
    delivery = (
        WebhookDelivery.objects.select_related("webhook__team").filter(pk=delivery_id).first()
    )
    if delivery is None:
        return AttemptOutcome(attempt=None, status=None)
    current = DeliveryStatus(delivery.status)
    number = delivery.attempts + 1
    if current != DeliveryStatus.PENDING or (attempt is not None and attempt != number):
        return AttemptOutcome(attempt=None, status=current)
    webhook = delivery.webhook
    if not webhook.active:
        _finish_unsent(delivery, "the webhook is disabled")
        return AttemptOutcome(attempt=None, status=DeliveryStatus(delivery.status))

    # Claim attempt `number`: whoever moves `attempts` from n-1 to n sends; others stop.
    now = timezone.now()
    claimed = WebhookDelivery.objects.filter(
        pk=delivery.pk, status=DeliveryStatus.PENDING, attempts=number - 1
    ).update(attempts=number, next_attempt_at=now + ATTEMPT_LEASE, updated_at=now)
    if not claimed:
        return AttemptOutcome(attempt=None, status=None)
    delivery.attempts = number

    try:
        # The URL passed the policy when it was stored; its name is resolved and checked
        # now, and the request goes to the address checked here (see targets.py).
        target = target_resolve(webhook.url)
    except TargetRefused as exc:
        response = _Response(status_code=None, error=f"refused: {exc.message}", duration_ms=0)
        return _record(delivery, number=number, at=now, response=response, permanent=True)
    except TargetUnresolved as exc:
        response = _Response(status_code=None, error=str(exc), duration_ms=0)
        return _record(delivery, number=number, at=now, response=response)
    timestamp = int(time.time())
    body = delivery_body(delivery)
    response = _post(
        target, body=body, headers=delivery_headers(delivery, body=body, timestamp=timestamp)
    )
    return _record(delivery, number=number, at=now, response=response)


def _record(
    delivery: WebhookDelivery,
    *,
    number: int,
    at: datetime,
    response: _Response,
    permanent: bool = False,
) -> AttemptOutcome:
    code = response.status_code
    delivered = code is not None and 200 <= code < 300
    gone = code == 410
    delays = retry_delays()
    retry_in: float | None = None
    next_attempt_at: datetime | None = None
    if delivered:
        status = DeliveryStatus.DELIVERED
    elif gone or permanent or number >= len(delays) + 1:
        status = DeliveryStatus.FAILED
    else:
        status = DeliveryStatus.PENDING
        next_attempt_at = at + timedelta(seconds=delays[number - 1])
        retry_in = max(0.0, (next_attempt_at - timezone.now()).total_seconds())
    with transaction.atomic():
        updated = WebhookDelivery.objects.filter(
            pk=delivery.pk, status=DeliveryStatus.PENDING, attempts=number
        ).update(
            status=status,
            next_attempt_at=next_attempt_at,
            last_status_code=code,
            last_error=response.error,
            updated_at=timezone.now(),
        )
        if not updated:
            # The webhook (and its deliveries) was deleted while the request was in flight.
            return AttemptOutcome(attempt=number, status=None)
        WebhookAttempt.objects.create(
            delivery=delivery,
            number=number,
            at=at,
            status_code=code,
            error=response.error,
            duration_ms=response.duration_ms,
        )
        if gone:
            webhook_disable_gone(webhook=delivery.webhook, status_code=410)
    if status != DeliveryStatus.DELIVERED:
        log.info(
            "webhook %s delivery %s attempt %d: %s -> %s",
            delivery.webhook_id,
            delivery.event_id,
            number,
            response.error,
            status,
        )
    return AttemptOutcome(attempt=number, status=status, retry_in=retry_in)


def _finish_unsent(delivery: WebhookDelivery, reason: str) -> None:
    updated = WebhookDelivery.objects.filter(pk=delivery.pk, status=DeliveryStatus.PENDING).update(
        status=DeliveryStatus.FAILED,
        next_attempt_at=None,
        last_error=reason,
        updated_at=timezone.now(),
    )
    if updated:
        delivery.status = DeliveryStatus.FAILED
    else:
        delivery.refresh_from_db(fields=["status"])


def deliveries_due(*, grace: timedelta = timedelta(seconds=60)) -> list[tuple[int, int]]:
    """(delivery id, next attempt number) of pending deliveries whose retry is overdue by
    more than `grace`: their task message was lost (broker down at commit time, a worker
    that died mid-attempt). The sweep re-sends them; the attempt number keeps a late
    original message and the re-sent one from both sending."""
    cutoff = timezone.now() - grace
    rows = WebhookDelivery.objects.filter(
        status=DeliveryStatus.PENDING, next_attempt_at__lte=cutoff
    ).values_list("pk", "attempts")[:1000]
    return [(pk, attempts + 1) for pk, attempts in rows]
