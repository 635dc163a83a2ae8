"""The webhooks API: who may do what, validation errors, the delivery log, test sends."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from studio.webhooks import services
from studio.webhooks.delivery import delivery_attempt
from studio.webhooks.models import Webhook, WebhookDelivery
from tests.factories import make_team, make_token, make_user
from tests.studio.webhooks.conftest import Receiver
from tests.studio.webhooks.support import make_admin_team, make_webhook

pytestmark = pytest.mark.django_db

URL = "https://hooks.example.com/studiolo"


def auth(user: Any) -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": f"Bearer {make_token(user)}"}


def create(client: Client, team: str, headers: dict[str, str], **body: Any) -> Any:
    body.setdefault("url", URL)
    body.setdefault("events", ["*"])
    return client.post(
        f"/api/v1/teams/{team}/webhooks", body, content_type="application/json", **headers
    )


def test_admin_creates_a_webhook_and_sees_the_secret_once(client: Client) -> None:
    team, admin = make_admin_team("lab")
    headers = auth(admin)
    response = create(client, "lab", headers, events=["job.status_changed"])
    assert response.status_code == 201
    body = response.json()
    assert body["url"] == URL
    assert body["events"] == ["job.status_changed"]
    assert body["active"] is True
    assert body["created_by"] == admin.username
    secret = body["secret"]
    assert secret.startswith("whsec_")
    listing = client.get("/api/v1/teams/lab/webhooks", **headers).json()["results"]
    assert [w["id"] for w in listing] == [body["id"]]
    assert secret not in str(listing)
    detail = client.get(f"/api/v1/teams/lab/webhooks/{body['id']}", **headers).json()
    assert "secret" not in detail


@pytest.mark.parametrize("role", ["viewer", "scientist", "approver"])
def test_members_below_admin_read_but_do_not_manage(client: Client, role: str) -> None:
    team, _ = make_admin_team("lab")
    webhook = make_webhook(URL, team=team)
    headers = auth(make_user(team, role=role))
    base = f"/api/v1/teams/lab/webhooks/{webhook.pk}"

    listing = client.get("/api/v1/teams/lab/webhooks", **headers)
    assert listing.status_code == 200
    assert [w["id"] for w in listing.json()["results"]] == [webhook.pk]
    assert "secret" not in listing.json()["results"][0]
    assert webhook.secret not in listing.content.decode()
    assert client.get(f"{base}/deliveries", **headers).status_code == 200

    assert create(client, "lab", headers).status_code == 403
    patched = client.patch(base, {"active": False}, content_type="application/json", **headers)
    assert patched.status_code == 403
    assert client.delete(base, **headers).status_code == 403
    assert client.post(f"{base}/test", **headers).status_code == 403
    webhook.refresh_from_db()
    assert webhook.active is True
    assert Webhook.objects.count() == 1
    assert not WebhookDelivery.objects.exists()


def test_another_team_gets_404_for_everything(client: Client) -> None:
    team, _ = make_admin_team("lab")
    webhook = make_webhook(URL, team=team)
    _, outsider = make_admin_team("rivals")
    headers = auth(outsider)
    base = f"/api/v1/teams/lab/webhooks/{webhook.pk}"
    assert client.get("/api/v1/teams/lab/webhooks", **headers).status_code == 404
    assert create(client, "lab", headers).status_code == 404
    assert client.get(base, **headers).status_code == 404
    assert client.get(f"{base}/deliveries", **headers).status_code == 404
    assert client.delete(base, **headers).status_code == 404
    assert client.post(f"{base}/test", **headers).status_code == 404
    # Their own team's path with our webhook's id is a 404 too.
    other = f"/api/v1/teams/rivals/webhooks/{webhook.pk}"
    assert client.get(other, **headers).status_code == 404
    assert client.delete(other, **headers).status_code == 404
    assert Webhook.objects.filter(pk=webhook.pk).exists()


def test_unauthenticated_requests_are_401(client: Client) -> None:
    make_team("lab")
    assert client.get("/api/v1/teams/lab/webhooks").status_code == 401


@pytest.mark.parametrize("url", ["ftp://example.com/hook", "http://", "https:///no-host"])
def test_a_bad_url_is_a_400_naming_url(client: Client, url: str) -> None:
    _, admin = make_admin_team("lab")
    response = create(client, "lab", auth(admin), url=url)
    assert response.status_code == 400
    assert response.json()["error"]["field"] == "url"
    assert not Webhook.objects.exists()


def test_an_unknown_event_type_is_a_400_naming_events(client: Client) -> None:
    _, admin = make_admin_team("lab")
    response = create(client, "lab", auth(admin), events=["job.status_changed", "job.exploded"])
    assert response.status_code == 400
    assert response.json()["error"]["field"] == "events"
    assert "job.exploded" in response.json()["error"]["message"]


def test_admin_updates_and_deletes(client: Client) -> None:
    team, admin = make_admin_team("lab")
    webhook = make_webhook(URL, team=team)
    headers = auth(admin)
    base = f"/api/v1/teams/lab/webhooks/{webhook.pk}"
    response = client.patch(
        base,
        {"active": False, "events": ["endpoint.status_changed"], "url": URL + "/v2"},
        content_type="application/json",
        **headers,
    )
    assert response.status_code == 200
    assert response.json()["active"] is False
    assert response.json()["events"] == ["endpoint.status_changed"]
    assert response.json()["url"] == URL + "/v2"
    bad = client.patch(base, {"url": "ftp://x"}, content_type="application/json", **headers)
    assert (bad.status_code, bad.json()["error"]["field"]) == (400, "url")
    assert client.delete(base, **headers).status_code == 204
    assert client.get(base, **headers).status_code == 404


def test_test_send_reaches_only_that_webhook_and_shows_in_its_deliveries(
    client: Client, receiver: Receiver, django_assert_max_num_queries: Any
) -> None:
    team, admin = make_admin_team("lab")
    target = make_webhook(receiver.url, events=["model_package.created"], team=team)
    bystander = make_webhook(receiver.url + "/other", events=["*"], team=team)
    headers = auth(admin)
    receiver.fail(1)
    response = client.post(f"/api/v1/teams/lab/webhooks/{target.pk}/test", **headers)
    assert response.status_code == 202
    assert response.json()["event_type"] == "webhook.test"
    assert response.json()["status"] == "pending"
    assert not WebhookDelivery.objects.filter(webhook=bystander).exists()

    delivery = WebhookDelivery.objects.get(webhook=target)
    delivery_attempt(delivery.pk)
    delivery_attempt(delivery.pk)
    assert [r.headers["X-Studiolo-Event"] for r in receiver.requests] == ["webhook.test"] * 2

    viewer_headers = auth(make_user(team, role="viewer"))
    with django_assert_max_num_queries(8):
        page = client.get(f"/api/v1/teams/lab/webhooks/{target.pk}/deliveries", **viewer_headers)
    assert page.status_code == 200
    (row,) = page.json()["results"]
    assert row["event_id"] == str(delivery.event_id)
    assert row["status"] == "delivered"
    assert row["attempts"] == 2
    assert [(a["number"], a["status_code"]) for a in row["attempt_log"]] == [(1, 500), (2, 200)]


def test_testing_a_disabled_webhook_is_a_409(client: Client) -> None:
    team, admin = make_admin_team("lab")
    webhook = make_webhook(URL, team=team)
    Webhook.objects.filter(pk=webhook.pk).update(active=False)
    response = client.post(f"/api/v1/teams/lab/webhooks/{webhook.pk}/test", **auth(admin))
    assert response.status_code == 409


def test_deliveries_list_query_count_does_not_grow_with_rows(
    client: Client, django_assert_max_num_queries: Any
) -> None:
    team, admin = make_admin_team("lab")
    webhook = make_webhook("http://127.0.0.1:9/hook", team=team)
    for _ in range(20):
        services.webhooks_emit(team=team, event_type="job.status_changed", payload={})
    headers = auth(admin)
    with django_assert_max_num_queries(8):
        page = client.get(f"/api/v1/teams/lab/webhooks/{webhook.pk}/deliveries", **headers)
    assert len(page.json()["results"]) == 20


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
        "http://metadata.google.internal/computeMetadata/v1/",
        "http://127.0.0.1:8000/endpoints/their-model/invocations",
        "http://10.0.0.7:8080/invocations",
        "http://[::ffff:127.0.0.1]/hook",
        "http://admin:pw@hooks.example.com/hook",
    ],
)
def test_an_internal_or_credentialed_url_is_a_400_naming_url(
    client: Client, url: str, settings: Any
) -> None:
    settings.WEBHOOK_ALLOWED_HOSTS = ()
    _, admin = make_admin_team("lab")
    response = create(client, "lab", auth(admin), url=url)
    assert response.status_code == 400, response.content
    assert response.json()["error"]["field"] == "url"
    assert not Webhook.objects.exists()
    webhook = make_webhook(URL)
    response = client.patch(
        f"/api/v1/teams/{webhook.team.slug}/webhooks/{webhook.pk}",
        {"url": url},
        content_type="application/json",
        **auth(make_user(webhook.team, role="admin")),
    )
    assert response.status_code == 400
    assert response.json()["error"]["field"] == "url"
    webhook.refresh_from_db()
    assert webhook.url == URL
