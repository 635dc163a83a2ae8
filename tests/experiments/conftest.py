"""Experiments test data, made through the services."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from rest_framework.test import APIClient

from experiments.models import Experiment, Run
from experiments.services import experiment_create, run_create
from studio.accounts.models import Team
from tests.factories import make_team, make_user


@pytest.fixture(autouse=True)
def _fresh_mlflow_callers() -> None:
    """The MLflow API keeps its callers a few seconds; each test starts with none kept."""
    from experiments.mlflow.calls import clear_callers

    clear_callers()


@pytest.fixture
def team(db: None) -> Team:
    return make_team()


@pytest.fixture
def scientist(team: Team) -> User:
    return make_user(team, role="scientist")


@pytest.fixture
def viewer(team: Team) -> User:
    return make_user(team, role="viewer")


@pytest.fixture
def outsider(db: None) -> User:
    """A scientist of another team."""
    return make_user(make_team(), role="scientist")


@pytest.fixture
def experiment(team: Team, scientist: User) -> Experiment:
    return experiment_create(team=team, name="churn", actor=scientist)


@pytest.fixture
def run(experiment: Experiment, scientist: User) -> Run:
    return run_create(experiment=experiment, name="baseline", actor=scientist)


def api(user: User | None) -> APIClient:
    client = APIClient()
    if user is not None:
        client.force_authenticate(user)
    return client


def error(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.content
    body: dict[str, Any] = response.json()["error"]
    return body
