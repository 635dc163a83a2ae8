"""The "try it" console's tokens: short-lived, and gone once they can never work again."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from studio.accounts import services
from studio.accounts.models import ApiToken, TokenPurpose
from studio.accounts.tasks import purge_try_tokens
from studio.audit.models import AuditEvent
from studio.celery import app
from studio.schedules import BEAT_SCHEDULE
from tests.factories import make_team, make_token, make_user

pytestmark = pytest.mark.django_db


def expire(token: ApiToken) -> None:
    ApiToken.objects.filter(pk=token.pk).update(expires_at=timezone.now() - timedelta(seconds=1))


def try_token(user: User) -> ApiToken:
    """A try-it token made without minting's purge."""
    token, _ = services.token_create(
        user=user,
        name=services.TRY_IT_TOKEN_NAME,
        expires_at=timezone.now() + timedelta(minutes=services.TRY_IT_TOKEN_MINUTES),
        purpose=TokenPurpose.TRY_IT,
    )
    return token


def dead_try_tokens(user: User) -> tuple[ApiToken, ApiToken]:
    """One expired and one revoked try-it token of `user`."""
    expired, revoked = try_token(user), try_token(user)
    expire(expired)
    services.token_revoke(token=revoked, actor=user)
    return expired, revoked


def test_a_try_token_is_a_short_lived_token_marked_as_such() -> None:
    user = make_user()
    token, secret = services.try_token_create(user=user)
    assert services.token_authenticate(secret) == user
    assert (token.name, token.purpose) == ("try-it console", TokenPurpose.TRY_IT)
    assert token.expires_at is not None
    lifetime = token.expires_at - timezone.now()
    assert timedelta(minutes=14) < lifetime <= timedelta(minutes=15)
    created = AuditEvent.objects.get(action="token.created", object_id=str(token.pk))
    assert created.details["purpose"] == "try_it"


def test_minting_a_try_token_deletes_the_users_dead_try_tokens_and_nothing_else() -> None:
    user, other = make_user(), make_user()
    expired, revoked = dead_try_tokens(user)
    live = try_token(user)  # another tab's, still valid
    theirs, _ = dead_try_tokens(other)
    own_expired, _ = services.token_create(
        user=user, name="try-it console", expires_at=timezone.now() + timedelta(hours=1)
    )
    expire(own_expired)  # a token the user made, whatever its name: never purged

    new, _ = services.try_token_create(user=user)

    remaining = set(ApiToken.objects.values_list("pk", flat=True))
    assert {expired.pk, revoked.pk}.isdisjoint(remaining)
    assert {live.pk, new.pk, own_expired.pk, theirs.pk} <= remaining
    purged = AuditEvent.objects.filter(action="token.purged").order_by("object_id")
    assert [(e.object_id, e.actor_name, e.details["reason"]) for e in purged] == [
        (str(expired.pk), "system", "expired"),
        (str(revoked.pk), "system", "revoked"),
    ]
    assert purged[0].details["user"] == user.get_username()


def test_the_periodic_purge_deletes_everyones_dead_try_tokens_once() -> None:
    first, second = make_user(), make_user()
    dead = [*dead_try_tokens(first), *dead_try_tokens(second)]
    live, _ = services.try_token_create(user=second)  # also purges second's dead ones
    dead_ids = {str(token.pk) for token in dead}

    assert purge_try_tokens() == 2  # first's two; second's went when it minted
    assert purge_try_tokens() == 0

    assert list(ApiToken.objects.filter(purpose=TokenPurpose.TRY_IT)) == [live]
    events = AuditEvent.objects.filter(action="token.purged")
    assert sorted(e.object_id for e in events) == sorted(dead_ids)  # one event per token


def test_beat_runs_the_purge_every_few_minutes() -> None:
    entry = BEAT_SCHEDULE["accounts-purge-try-tokens"]
    assert entry["task"] == "accounts.purge_try_tokens"
    assert entry["task"] in app.tasks
    assert entry["schedule"] <= services.TRY_IT_TOKEN_MINUTES * 60


def test_token_lists_leave_out_dead_try_tokens(client: Client) -> None:
    team = make_team()
    user = make_user(team)
    live, _ = services.try_token_create(user=user)
    dead_try_tokens(user)  # still in the database, until the purge
    mine, _ = services.token_create(user=user, name="ci")
    services.token_revoke(token=mine, actor=user)  # the user's own: listed as revoked

    auth = {"HTTP_AUTHORIZATION": f"Bearer {make_token(user)}"}
    listed = client.get("/api/v1/tokens", **auth).json()["results"]
    assert sorted((t["name"], t["purpose"]) for t in listed) == [
        ("ci", "api"),
        ("tests", "api"),
        ("try-it console", "try_it"),
    ]
    assert [t["id"] for t in listed if t["purpose"] == "try_it"] == [live.pk]
    assert ApiToken.objects.filter(purpose=TokenPurpose.TRY_IT).count() == 3

    client.force_login(user)
    rows = client.get(reverse("settings-tokens")).context["rows"]
    assert sorted((row.token.name, row.state) for row in rows) == [
        ("ci", "revoked"),
        ("tests", "active"),
        ("try-it console", "active"),
    ]


def test_the_user_sees_the_purge_of_their_tokens_in_the_audit_log(client: Client) -> None:
    user = make_user(make_team())
    expired, _ = dead_try_tokens(user)
    purge_try_tokens()

    auth = {"HTTP_AUTHORIZATION": f"Bearer {make_token(user)}"}
    events = client.get("/api/v1/audit?action=token.purged", **auth).json()["results"]
    assert len(events) == 2
    event = next(e for e in events if e["object_id"] == str(expired.pk))
    assert (event["actor"], event["team"]) == ("system", None)  # personal, not a team's
    assert event["details"]["reason"] == "expired"
