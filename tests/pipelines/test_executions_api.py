"""The executions' REST API: start with parameters (a wrong one is a 400 naming it), list,
describe with the steps, stop; another team's execution is a 404."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from rest_framework.test import APIClient

from pipelines.models import PipelineExecution
from studio.accounts.models import Team
from tests.factories import make_team, make_user
from tests.pipelines.support import small

pytestmark = pytest.mark.django_db


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


def created(client: APIClient) -> dict[str, Any]:
    response = client.post(
        "/api/v1/pipelines", {"name": "flow", "definition": small()}, format="json"
    )
    assert response.status_code == 201, response.content
    body: dict[str, Any] = response.json()
    return body


def test_an_execution_is_started_listed_described_and_stopped(scientist: User) -> None:
    client = api(scientist)
    created(client)
    response = client.post(
        "/api/v1/pipelines/flow/executions", {"parameters": {"Threshold": "0.7"}}, format="json"
    )
    assert response.status_code == 201, response.content
    started = response.json()
    assert started["status"] == "Executing"
    assert started["parameters"] == {"Threshold": 0.7}
    assert started["version"] == 1
    assert [(s["name"], s["status"]) for s in started["steps"]] == [
        ("Prepare", "Pending"),
        ("Stop", "Pending"),
    ]

    listed = client.get("/api/v1/pipelines/flow/executions").json()
    assert [e["id"] for e in listed["results"]] == [started["id"]]

    url = f"/api/v1/pipeline-executions/{started['id']}"
    assert client.get(url).json()["steps"][0]["job"] is None

    stopped = client.post(f"{url}/stop")
    assert stopped.status_code == 200, stopped.content
    assert stopped.json()["status"] == "Stopping"
    again = client.post(f"{url}/stop")  # stopping already: nothing changes
    assert (again.status_code, again.json()["status"]) == (200, "Stopping")


def test_a_parameter_of_the_wrong_type_is_a_400_naming_it(scientist: User) -> None:
    client = api(scientist)
    created(client)
    response = client.post(
        "/api/v1/pipelines/flow/executions", {"parameters": {"Threshold": "high"}}, format="json"
    )
    assert response.status_code == 400
    assert response.json()["error"]["field"] == "parameters.Threshold"
    assert not PipelineExecution.objects.exists()


def test_another_teams_execution_is_not_found(scientist: User) -> None:
    client = api(scientist)
    created(client)
    execution = client.post("/api/v1/pipelines/flow/executions", {}, format="json").json()
    stranger = make_user(make_team(), role="scientist")
    url = f"/api/v1/pipeline-executions/{execution['id']}"
    assert api(stranger).get(url).status_code == 404
    assert api(stranger).post(f"{url}/stop").status_code == 404
