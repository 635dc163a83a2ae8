"""The REST lists of models, endpoint configs and endpoints: the caller's teams only, one
team with `?team=`, pages by name."""

from __future__ import annotations

import pytest
from django.test import Client

from endpoints.services.lifecycle import endpoint_create
from endpoints.services.models import VariantRequest, config_create, model_for_package
from tests.endpoints.conftest import approved_package
from tests.factories import make_team, make_user

pytestmark = pytest.mark.django_db


def deploy(team_slug: str, name: str) -> Client:
    team = make_team(team_slug)
    scientist = make_user(team, role="scientist")
    package = approved_package(team, scientist, make_user(team, role="approver"))
    model = model_for_package(team=team, actor=scientist, package=package)
    config = config_create(
        team=team, actor=scientist, name=f"{name}-config", variants=[VariantRequest(model=model)]
    )
    endpoint_create(team=team, actor=scientist, name=name, config=config)
    client = Client()
    client.force_login(scientist)
    return client


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/api/v1/models", "echo-v1"),
        ("/api/v1/endpoint-configs", "churn-config"),
        ("/api/v1/endpoints", "churn"),
    ],
)
def test_lists_show_the_callers_team_only(path: str, expected: str) -> None:
    client = deploy("alpha", "churn")
    deploy("beta", "secret")

    mine = client.get(path)
    assert mine.status_code == 200, mine.content
    names = [item["name"] for item in mine.json()["results"]]
    assert names == [expected]
    assert client.get(path, {"team": "alpha"}).json()["results"][0]["name"] == expected
    assert client.get(path, {"team": "beta"}).status_code == 404  # not the caller's team
