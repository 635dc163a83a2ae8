"""Submitting a job while the work queue (Redis) is away, and submitting twice.

The broker is a real one that refuses connections (a port nothing listens on), so Celery and
kombu fail exactly as they do when Redis is down; then the real one again.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.utils import timezone

from jobs.models import TERMINAL_STATUSES, Job, JobStatus
from jobs.reconcile import reconcile_jobs
from studio.audit.models import AuditEvent
from studio.celery import app as celery_app
from tests.factories import make_team, make_token, make_user
from tests.support import free_port

# transaction=True: the job's dispatch happens after the commit, as in production.
pytestmark = pytest.mark.django_db(transaction=True)


def _use_broker(url: str) -> None:
    celery_app.conf.broker_url = url
    # Celery keeps a connection pool and a producer pool per app; new ones follow the URL.
    celery_app._pool = None
    celery_app.amqp._producer_pool = None


@pytest.fixture
def broker_away(redis_available: None) -> Iterator[None]:
    working = celery_app.conf.broker_url
    _use_broker(f"redis://127.0.0.1:{free_port()}/0")
    yield
    _use_broker(working)


@pytest.fixture
def auth(settings: Any) -> dict[str, str]:
    settings.RUNTIME = "process"  # any image "exists": no engine needed to submit
    team = make_team("lab")
    return {"HTTP_AUTHORIZATION": f"Bearer {make_token(make_user(team, role='scientist'))}"}


def body(**overrides: Any) -> dict[str, Any]:
    return {
        "name": "nightly",
        "image": "example/trainer:1",
        "instance_type": "ml.local.small",
        "container_entrypoint": ["/bin/true"],
        **overrides,
    }


def post(client: Client, auth: dict[str, str], data: dict[str, Any], key: str | None) -> Any:
    headers = {"HTTP_IDEMPOTENCY_KEY": key} if key is not None else {}
    return client.post("/api/v1/jobs", data, content_type="application/json", **auth, **headers)


def test_a_submission_while_redis_is_away_is_kept_and_dispatched_once_it_is_back(
    client: Client, auth: dict[str, str], broker_away: None
) -> None:
    response = post(client, auth, body(), key=None)

    assert response.status_code == 201, response.content
    assert response["Content-Type"] == "application/json"
    job = Job.objects.get()
    assert job.status == JobStatus.PENDING
    assert job.dispatched_at is None
    assert AuditEvent.objects.filter(action="job.created").count() == 1

    # Still away: reconciliation tries, the job stays waiting for it.
    Job.objects.filter(pk=job.pk).update(created_at=job.created_at.replace(year=2000))
    assert reconcile_jobs()["dispatched"] == 0
    assert Job.objects.get().dispatched_at is None

    _use_broker(broker_working())
    assert reconcile_jobs()["dispatched"] == 1
    assert Job.objects.get().dispatched_at is not None
    assert reconcile_jobs()["dispatched"] == 0  # once
    _settle(job.pk)


def _settle(job_id: int) -> None:
    """The dispatched job is real work for a worker of the session's, if one runs: end it
    before any worker takes it, or wait for the worker that did to let it go, so that the
    test's teardown does not empty the tables under a worker's transaction (on PostgreSQL the
    TRUNCATE deadlocked with it)."""
    Job.objects.filter(pk=job_id, status=JobStatus.PENDING, lease_owner="").update(
        status=JobStatus.STOPPED, ended_at=timezone.now()
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        job = Job.objects.get(pk=job_id)
        if job.status in TERMINAL_STATUSES and not job.lease_owner:
            return
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} is still held by a worker: {job.status}")


def broker_working() -> str:
    from django.conf import settings

    return str(settings.CELERY_BROKER_URL)


def test_a_retry_with_the_same_key_and_body_gets_the_same_job(
    client: Client, auth: dict[str, str], broker_away: None
) -> None:
    first = post(client, auth, body(), key="3f1c2a9e-retry")
    # Key order and spacing do not matter: the body is compared as data.
    again = post(client, auth, dict(reversed(list(body().items()))), key="3f1c2a9e-retry")

    assert first.status_code == again.status_code == 201, again.content
    assert first.json()["id"] == again.json()["id"]
    assert Job.objects.count() == 1
    assert AuditEvent.objects.filter(action="job.created").count() == 1


def test_the_same_key_with_another_body_is_a_422_naming_the_header(
    client: Client, auth: dict[str, str], broker_away: None
) -> None:
    assert post(client, auth, body(), key="k-1").status_code == 201
    response = post(client, auth, body(name="another"), key="k-1")

    assert response.status_code == 422, response.content
    error = response.json()["error"]
    assert error["code"] == "idempotency_key_reused"
    assert error["field"] == "Idempotency-Key"
    assert "nightly" in error["message"]
    assert Job.objects.count() == 1


def test_keys_belong_to_their_user(client: Client, auth: dict[str, str], broker_away: None) -> None:
    assert post(client, auth, body(), key="shared").status_code == 201
    other = make_user(Job.objects.get().team, role="scientist")
    other_auth = {"HTTP_AUTHORIZATION": f"Bearer {make_token(other)}"}

    response = post(client, other_auth, body(name="theirs"), key="shared")

    assert response.status_code == 201, response.content
    assert Job.objects.count() == 2


@pytest.mark.parametrize("key", ["", "with space", "x" * 256, "caf\u00e9"])
def test_a_malformed_key_is_a_400_naming_the_header(
    client: Client, auth: dict[str, str], key: str
) -> None:
    response = post(client, auth, body(), key=key)

    assert response.status_code == 400, response.content
    assert response.json()["error"]["field"] == "Idempotency-Key"
    assert not Job.objects.exists()


def test_two_requests_racing_with_one_key_make_one_job(
    auth: dict[str, str], broker_away: None
) -> None:
    answers: list[Any] = []
    start = threading.Barrier(2)

    def submit() -> None:
        try:
            start.wait()
            answers.append(post(Client(), auth, body(), key="raced"))
        finally:
            connection.close()

    threads = [threading.Thread(target=submit) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    assert [answer.status_code for answer in answers] == [201, 201], [a.content for a in answers]
    assert len({answer.json()["id"] for answer in answers}) == 1
    assert Job.objects.count() == 1
