"""Bearer tokens: random, stored hashed, shown once, revocable, expiring, last-used."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from studio.accounts import services
from studio.accounts.models import ApiToken
from studio.audit.models import AuditEvent
from tests.factories import make_team, make_token, make_user

pytestmark = pytest.mark.django_db


def get_me(client: Client, token: str) -> tuple[int, dict[str, object]]:
    response = client.get("/api/v1/me", HTTP_AUTHORIZATION=f"Bearer {token}")
    return response.status_code, response.json()


def test_valid_token_authenticates(client: Client) -> None:
    team = make_team("alpha")
    user = make_user(team, role="viewer", username="ana")
    status, body = get_me(client, make_token(user))
    assert status == 200
    assert body == {
        "username": "ana",
        "teams": [{"slug": "alpha", "name": "alpha", "role": "viewer", "bucket": "studiolo-alpha"}],
    }


def test_token_is_stored_only_as_a_digest() -> None:
    user = make_user()
    token, secret = services.token_create(user=user, name="ci")
    row = ApiToken.objects.get(pk=token.pk)
    assert secret.startswith("stl_")
    assert len(secret) > 40
    assert secret not in (row.digest, row.prefix)
    assert secret.startswith(row.prefix)


def test_wrong_token_is_rejected_with_401(client: Client) -> None:
    make_token(make_user())
    status, body = get_me(client, "stl_" + "x" * 43)
    assert status == 401
    assert body["error"]["message"] == "invalid, expired or revoked token"


def test_malformed_authorization_header_is_401(client: Client) -> None:
    response = client.get("/api/v1/me", HTTP_AUTHORIZATION="Bearer a b")
    assert response.status_code == 401


def test_no_credentials_is_401_not_a_login_redirect(client: Client) -> None:
    response = client.get("/api/v1/me")
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_revoked_token_is_rejected(client: Client) -> None:
    user = make_user()
    token, secret = services.token_create(user=user, name="ci")
    assert get_me(client, secret)[0] == 200
    services.token_revoke(token=token, actor=user)
    assert get_me(client, secret)[0] == 401


def test_revoking_through_the_api_is_audited_once(client: Client) -> None:
    user = make_user()
    token, secret = services.token_create(user=user, name="ci")
    auth = {"HTTP_AUTHORIZATION": f"Bearer {make_token(user)}"}
    assert client.delete(f"/api/v1/tokens/{token.pk}", **auth).status_code == 200
    assert client.delete(f"/api/v1/tokens/{token.pk}", **auth).status_code == 200
    assert get_me(client, secret)[0] == 401
    assert AuditEvent.objects.filter(action="token.revoked", object_id=str(token.pk)).count() == 1


def test_expired_token_is_rejected(client: Client) -> None:
    user = make_user()
    token, secret = services.token_create(
        user=user, name="short", expires_at=timezone.now() + timedelta(hours=1)
    )
    ApiToken.objects.filter(pk=token.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert get_me(client, secret)[0] == 401


def test_inactive_user_token_is_rejected(client: Client) -> None:
    user = make_user()
    secret = make_token(user)
    user.is_active = False
    user.save(update_fields=["is_active"])
    assert get_me(client, secret)[0] == 401


def test_last_used_is_recorded_but_not_on_every_request(client: Client) -> None:
    user = make_user()
    token, secret = services.token_create(user=user, name="ci")
    assert token.last_used_at is None
    get_me(client, secret)
    token.refresh_from_db()
    first = token.last_used_at
    assert first is not None
    get_me(client, secret)
    token.refresh_from_db()
    assert token.last_used_at == first


def test_token_created_through_the_api_is_shown_once(client: Client) -> None:
    user = make_user()
    auth = {"HTTP_AUTHORIZATION": f"Bearer {make_token(user)}"}
    created = client.post(
        "/api/v1/tokens", {"name": "laptop"}, content_type="application/json", **auth
    )
    assert created.status_code == 201
    secret = created.json()["token"]
    assert get_me(client, secret)[0] == 200
    listing = client.get("/api/v1/tokens", **auth).json()["results"]
    assert {t["name"] for t in listing} == {"tests", "laptop"}
    assert all("token" not in t for t in listing)
    assert secret not in str(listing)


def test_token_without_name_is_a_400_naming_the_field(client: Client) -> None:
    user = make_user()
    auth = {"HTTP_AUTHORIZATION": f"Bearer {make_token(user)}"}
    response = client.post("/api/v1/tokens", {}, content_type="application/json", **auth)
    assert response.status_code == 400
    assert response.json()["error"]["field"] == "name"


def test_cannot_revoke_someone_elses_token(client: Client) -> None:
    owner = make_user()
    token, secret = services.token_create(user=owner, name="mine")
    intruder = make_user()
    auth = {"HTTP_AUTHORIZATION": f"Bearer {make_token(intruder)}"}
    assert client.delete(f"/api/v1/tokens/{token.pk}", **auth).status_code == 404
    assert get_me(client, secret)[0] == 200
