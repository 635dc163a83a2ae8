"""A user never sees another team's objects: 404, not 403, so names do not leak."""

from __future__ import annotations

import pytest
from django.test import Client

from studio.accounts import services
from tests.factories import make_team, make_token, make_user

pytestmark = pytest.mark.django_db


def test_other_teams_members_are_not_found(client: Client) -> None:
    mine, theirs = make_team("mine"), make_team("theirs")
    user = make_user(mine, role="admin")
    make_user(theirs, role="admin")
    auth = {"HTTP_AUTHORIZATION": f"Bearer {make_token(user)}"}
    assert client.get("/api/v1/teams/mine/members", **auth).status_code == 200
    hidden = client.get("/api/v1/teams/theirs/members", **auth)
    missing = client.get("/api/v1/teams/no-such-team/members", **auth)
    assert hidden.status_code == missing.status_code == 404
    assert hidden.json()["error"]["code"] == missing.json()["error"]["code"] == "not_found"


def test_other_teams_audit_events_are_invisible(client: Client) -> None:
    mine, theirs = make_team("mine"), make_team("theirs")
    user = make_user(mine)
    stranger = make_user(theirs, role="admin")
    services.membership_set(team=theirs, user=make_user(), role="viewer", actor=stranger)
    auth = {"HTTP_AUTHORIZATION": f"Bearer {make_token(user)}"}
    events = client.get("/api/v1/audit", **auth).json()["results"]
    assert events
    assert {e["team"] for e in events} <= {"mine", None}
    # Asking for their team by name is a 404, as for any of its objects.
    assert client.get("/api/v1/audit?team=theirs", **auth).status_code == 404


def test_me_lists_only_own_teams(client: Client) -> None:
    mine = make_team("mine")
    make_team("theirs")
    user = make_user(mine)
    body = client.get("/api/v1/me", HTTP_AUTHORIZATION=f"Bearer {make_token(user)}").json()
    assert [t["slug"] for t in body["teams"]] == ["mine"]
