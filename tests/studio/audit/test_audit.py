"""The audit log records every state change and can never be changed or deleted."""

from __future__ import annotations

import pytest
from django.db import DatabaseError, connection, transaction
from django.test import Client

from studio.accounts import services
from studio.audit.models import AuditEvent
from tests.factories import make_team, make_token, make_user

pytestmark = pytest.mark.django_db


def test_state_changes_write_events_with_actor_and_team() -> None:
    team = make_team("alpha")
    admin = make_user(team, role="admin", username="boss")
    member = make_user(username="newbie")
    services.membership_set(team=team, user=member, role="viewer", actor=admin)
    services.membership_set(team=team, user=member, role="scientist", actor=admin)
    events = list(
        AuditEvent.objects.filter(team=team, action__startswith="membership.").order_by("id")
    )
    assert [(e.actor_name, e.action, e.details["role"]) for e in events[-2:]] == [
        ("boss", "membership.added", "viewer"),
        ("boss", "membership.role_changed", "scientist"),
    ]
    assert events[-1].details["previous_role"] == "viewer"
    assert events[-1].created_at is not None


def test_setting_the_same_role_again_records_nothing() -> None:
    team = make_team()
    user = make_user(team, role="viewer")
    before = AuditEvent.objects.count()
    services.membership_set(team=team, user=user, role="viewer")
    assert AuditEvent.objects.count() == before


def test_events_cannot_be_changed_through_the_orm() -> None:
    make_team()
    event = AuditEvent.objects.first()
    assert event is not None
    event.action = "forged"
    with pytest.raises(TypeError, match="append-only"):
        event.save()
    with pytest.raises(TypeError, match="append-only"):
        event.delete()
    with pytest.raises(TypeError, match="append-only"):
        AuditEvent.objects.update(action="forged")
    with pytest.raises(TypeError, match="append-only"):
        AuditEvent.objects.all().delete()


@pytest.mark.parametrize(
    "statement",
    ["UPDATE audit_auditevent SET action = 'forged'", "DELETE FROM audit_auditevent"],
)
def test_database_refuses_raw_updates_and_deletes(statement: str) -> None:
    if statement.startswith("DELETE") and connection.vendor == "sqlite":
        pytest.skip(
            "SQLite refuses DELETE in the ORM only (see migration 0002); CI runs PostgreSQL"
        )
    make_team()
    with (
        pytest.raises(DatabaseError, match="append-only"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(statement)
    assert not AuditEvent.objects.filter(action="forged").exists()
    assert AuditEvent.objects.exists()


def test_api_is_read_only(client: Client) -> None:
    user = make_user(make_team())
    auth = {"HTTP_AUTHORIZATION": f"Bearer {make_token(user)}"}
    for method in ("post", "put", "patch", "delete"):
        response = getattr(client, method)(
            "/api/v1/audit", {}, content_type="application/json", **auth
        )
        assert response.status_code == 405, method


def test_api_filters_by_action_prefix_actor_and_team(client: Client) -> None:
    team = make_team("alpha")
    admin = make_user(team, role="admin", username="boss")
    services.membership_set(team=team, user=make_user(username="x1"), role="viewer", actor=admin)
    auth = {"HTTP_AUTHORIZATION": f"Bearer {make_token(admin)}"}
    by_prefix = client.get("/api/v1/audit?action=membership.&actor=boss&team=alpha", **auth).json()
    assert [e["action"] for e in by_prefix["results"]] == ["membership.added"]
    assert by_prefix["results"][0]["details"]["user"] == "x1"
    bad = client.get("/api/v1/audit?since=yesterday", **auth)
    assert bad.status_code == 400
    assert bad.json()["error"]["field"] == "since"


def test_list_query_count_does_not_grow_with_events(
    client: Client, django_assert_max_num_queries
) -> None:  # type: ignore[no-untyped-def]
    team = make_team()
    admin = make_user(team, role="admin")
    auth = {"HTTP_AUTHORIZATION": f"Bearer {make_token(admin)}"}
    for _ in range(30):
        services.membership_set(team=team, user=make_user(), role="viewer", actor=admin)
    with django_assert_max_num_queries(4):
        response = client.get("/api/v1/audit?limit=100", **auth)
    assert len(response.json()["results"]) > 30
