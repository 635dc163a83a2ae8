"""The pipelines REST API: create, list, describe, update, versions and diffs; bad input is a
400 naming the field, a stranger's pipeline a 404, with nothing changed."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.contrib.auth.models import User
from rest_framework.test import APIClient

from pipelines.models import Pipeline, PipelineVersion
from studio.accounts.models import Team
from tests.factories import make_team, make_user
from tests.pipelines.support import SDK_DEFINITIONS, canonical, small

pytestmark = pytest.mark.django_db

URL = "/api/v1/pipelines"


@pytest.fixture
def team() -> Team:
    return make_team()


@pytest.fixture
def scientist(team: Team) -> User:
    return make_user(team, role="scientist")


def api(user: User) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def error(response: Any, status: int, field: str | None) -> dict[str, Any]:
    assert response.status_code == status, response.content
    body: dict[str, Any] = response.json()["error"]
    assert body["field"] == field, body
    return body


def test_a_pipeline_is_created_described_and_listed(scientist: User, team: Team) -> None:
    client = api(scientist)
    created = client.post(
        URL, {"name": "abalone", "definition": canonical(), "description": "age"}, format="json"
    )
    assert created.status_code == 201, created.content
    body = created.json()
    assert (body["team"], body["name"], body["latest_version"]) == (team.slug, "abalone", 1)
    assert body["version"]["number"] == 1
    steps = {s["name"]: s for s in body["version"]["steps"]}
    assert steps["TrainModel"]["depends_on"] == ["PreprocessData"]
    assert steps["AccuracyTooLow"]["branch"] == "ElseSteps"
    assert {p["name"]: p["type"] for p in body["version"]["parameters"]}["TrainingEpochs"] == (
        "Integer"
    )
    described = client.get(f"{URL}/abalone").json()
    assert described["version"]["definition"] == canonical()
    listed = client.get(URL, {"team": team.slug}).json()["results"]
    assert [(p["name"], p["version_count"]) for p in listed] == [("abalone", 1)]


@pytest.mark.parametrize("path", SDK_DEFINITIONS, ids=lambda p: p.stem)
def test_the_sdks_definition_text_is_accepted_as_it_is(scientist: User, path: Any) -> None:
    response = api(scientist).post(
        URL, {"name": "sdk", "definition": path.read_text()}, format="json"
    )
    assert response.status_code == 201, response.content


def test_an_update_makes_a_version_and_the_diff_shows_it(scientist: User) -> None:
    client = api(scientist)
    client.post(URL, {"name": "p", "definition": small()}, format="json")
    same = client.put(f"{URL}/p", {"definition": json.dumps(small())}, format="json").json()
    assert (same["created"], same["version"]["number"]) == (False, 1)
    changed = client.put(
        f"{URL}/p",
        {"definition": small(default=0.9), "version_description": "stricter"},
        format="json",
    ).json()
    assert (changed["created"], changed["version"]["number"]) == (True, 2)
    versions = client.get(f"{URL}/p/versions").json()
    assert [(v["number"], v["description"]) for v in versions] == [(2, "stricter"), (1, "")]
    assert client.get(f"{URL}/p", {"version": 1}).json()["version"]["number"] == 1
    assert client.get(f"{URL}/p/versions/2").json()["definition"] == small(default=0.9)
    diff = client.get(f"{URL}/p/versions/1/diff/2").json()
    assert diff["same"] is False
    assert '+      "DefaultValue": 0.9,' in diff["diff"]


def test_a_cycle_is_a_400_naming_the_steps(scientist: User) -> None:
    document = small()
    document["Steps"][0]["DependsOn"] = ["Stop"]
    response = api(scientist).post(URL, {"name": "p", "definition": document}, format="json")
    body = error(response, 400, "definition.Steps[Prepare]")
    assert (
        "Prepare -> Stop -> Prepare" in body["message"]
        or "Stop -> Prepare -> Stop" in body["message"]
    )
    assert not Pipeline.objects.exists()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "p"}, "definition"),
        ({"name": "p", "definition": "{oops"}, "definition"),
        ({"name": "p", "definition": [1]}, "definition"),
        ({"name": "bad name", "definition": small()}, "name"),
        ({"name": "p", "definition": small(), "team": "elsewhere"}, "team"),
    ],
)
def test_bad_input_is_a_4xx_naming_the_field(
    scientist: User, body: dict[str, Any], field: str
) -> None:
    response = api(scientist).post(URL, body, format="json")
    assert response.status_code in (400, 404), response.content
    assert response.json()["error"]["field"] == field
    assert not PipelineVersion.objects.exists()


def test_an_unknown_reference_is_a_400_naming_where(scientist: User) -> None:
    document = small()
    document["Steps"][1]["Arguments"]["ErrorMessage"] = {"Get": "Parameters.Nope"}
    response = api(scientist).post(URL, {"name": "p", "definition": document}, format="json")
    body = error(response, 400, "definition.Steps[Stop].Arguments.ErrorMessage.Get")
    assert "'Nope'" in body["message"]


def test_a_viewer_may_read_but_not_create(team: Team, scientist: User) -> None:
    api(scientist).post(URL, {"name": "p", "definition": small()}, format="json")
    viewer = make_user(team, role="viewer")
    assert api(viewer).get(f"{URL}/p").status_code == 200
    response = api(viewer).post(URL, {"name": "q", "definition": small()}, format="json")
    assert response.status_code == 403
    response = api(viewer).put(f"{URL}/p", {"definition": small(default=1.0)}, format="json")
    assert response.status_code == 403


def test_another_teams_pipeline_is_not_found(scientist: User) -> None:
    api(scientist).post(URL, {"name": "p", "definition": small()}, format="json")
    stranger = make_user(make_team())
    error(api(stranger).get(f"{URL}/p"), 404, "pipeline")
    assert api(stranger).get(URL).json()["results"] == []


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("p/versions/7", "version"),
        ("p/versions/1/diff/7", "version"),
        ("nope/versions", "pipeline"),
    ],
)
def test_a_missing_version_or_pipeline_is_a_404(scientist: User, path: str, field: str) -> None:
    api(scientist).post(URL, {"name": "p", "definition": small()}, format="json")
    error(api(scientist).get(f"{URL}/{path}"), 404, field)


@pytest.mark.parametrize("path", ["", "/p", "/p/versions/1"])
def test_a_team_with_a_nul_byte_is_not_found(scientist: User, path: str) -> None:
    """PostgreSQL refuses NUL in a query: the team lookup answers 404 before asking it (the
    API fuzzer found a 500 here)."""
    api(scientist).post(URL, {"name": "p", "definition": small()}, format="json")
    error(api(scientist).get(f"{URL}{path}", {"team": "lab\x00x"}), 404, "team")


def test_a_version_that_is_not_a_number_is_a_400(scientist: User) -> None:
    api(scientist).post(URL, {"name": "p", "definition": small()}, format="json")
    error(api(scientist).get(f"{URL}/p", {"version": "x"}), 400, "version")


def test_listing_takes_a_fixed_number_of_queries(
    scientist: User, team: Team, django_assert_max_num_queries: Any
) -> None:
    client = api(scientist)
    for index in range(5):
        client.post(URL, {"name": f"p{index}", "definition": small()}, format="json")
    with django_assert_max_num_queries(6):
        assert len(client.get(URL).json()["results"]) == 5
