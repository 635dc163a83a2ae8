"""`?team=<slug>` on a list: a team the caller is not in is a 404 naming `team`, like any of
its objects (it was an empty 200, which told nothing and hid a wrong slug); the caller's own
team narrows the list."""

from __future__ import annotations

import pytest
from django.test import Client

from tests.factories import make_team, make_token, make_user

pytestmark = pytest.mark.django_db

LISTS = [
    "/api/v1/experiments",
    "/api/v1/jobs",
    "/api/v1/models",
    "/api/v1/endpoint-configs",
    "/api/v1/endpoints",
    "/api/v1/audit",
]


@pytest.mark.parametrize("path", LISTS)
def test_another_teams_list_is_not_found(path: str) -> None:
    mine, theirs = make_team("mine"), make_team("theirs")
    client = Client(HTTP_AUTHORIZATION=f"Bearer {make_token(make_user(mine))}")
    make_user(theirs)
    for slug in ("theirs", "nobody"):
        response = client.get(path, {"team": slug})
        assert response.status_code == 404, response.content
        assert response.json()["error"]["field"] == "team"
    own = client.get(path, {"team": "mine"})
    assert own.status_code == 200, own.content
