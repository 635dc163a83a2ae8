"""Artifacts through the studio: team-scoped uploads and listings, signed downloads."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.conf import settings
from django.test import Client

from studio.artifacts import get_store, sign_download
from tests.factories import make_team, make_token, make_user

pytestmark = pytest.mark.django_db


def auth(user: object) -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": f"Bearer {make_token(user)}"}  # type: ignore[arg-type]


def test_scientist_uploads_into_the_team_area_and_lists_it(client: Client) -> None:
    team = make_team("lab")
    headers = auth(make_user(team, role="scientist"))
    response = client.put(
        "/api/v1/artifacts/teams/lab/data/train.csv", b"1,2\n", content_type="text/csv", **headers
    )
    assert response.status_code == 201, response.content
    assert response.json()["size"] == 4
    assert response.json()["uri"] == get_store().uri("teams/lab/data/train.csv")
    assert get_store().get("teams/lab/data/train.csv") == b"1,2\n"
    listing = client.get("/api/v1/artifacts?prefix=teams/lab/data", **headers).json()["results"]
    assert [o["key"] for o in listing] == ["teams/lab/data/train.csv"]


@pytest.mark.parametrize(
    ("key", "status"),
    [
        ("teams/other/x.csv", 404),  # another team's area: as if it did not exist
        ("elsewhere/x.csv", 404),  # outside every team's area
        ("teams/lab/../other/x.csv", 400),  # escaping: refused before anything
    ],
)
def test_uploads_outside_the_own_team_area_are_refused(
    client: Client, key: str, status: int
) -> None:
    team = make_team("lab")
    make_team("other")
    response = client.put(
        f"/api/v1/artifacts/{key}", b"x", content_type="text/csv", **auth(make_user(team))
    )
    assert response.status_code == status, response.content
    assert not get_store().exists("teams/other/x.csv")


def test_viewer_cannot_upload(client: Client) -> None:
    team = make_team("lab")
    response = client.put(
        "/api/v1/artifacts/teams/lab/x.csv",
        b"x",
        content_type="text/csv",
        **auth(make_user(team, role="viewer")),
    )
    assert response.status_code == 403
    assert not get_store().exists("teams/lab/x.csv")


def test_signed_download_streams_the_object_to_a_signed_in_user(client: Client) -> None:
    get_store().put("teams/lab/model.tar.gz", b"model")
    link = "/artifacts/download?" + sign_download(
        "teams/lab/model.tar.gz", secret=settings.SECRET_KEY
    )
    headers = auth(make_user(make_team("lab")))
    response = client.get(link, **headers)
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == b"model"
    assert response["Content-Length"] == "5"
    assert "attachment" in response["Content-Disposition"]


def test_download_needs_a_login_and_a_valid_signature(client: Client) -> None:
    get_store().put("teams/lab/model.tar.gz", b"model")
    good = sign_download("teams/lab/model.tar.gz", secret=settings.SECRET_KEY)
    assert client.get("/artifacts/download?" + good).status_code == 401
    headers = auth(make_user(make_team("lab")))
    tampered = good.replace("teams%2Flab%2Fmodel.tar.gz", "teams%2Flab%2Fother.tar.gz").replace(
        "teams/lab/model.tar.gz", "teams/lab/other.tar.gz"
    )
    assert tampered != good
    assert client.get("/artifacts/download?" + tampered, **headers).status_code == 403
    expired = sign_download(
        "teams/lab/model.tar.gz",
        secret=settings.SECRET_KEY,
        expires_in=60,
        now=datetime.now(UTC) - timedelta(minutes=5),
    )
    assert client.get("/artifacts/download?" + expired, **headers).status_code == 403
