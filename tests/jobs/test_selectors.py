"""The jobs lists' one filter (`jobs_filtered`): what the REST API (and so the CLI) and the
jobs page list for the same question."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client

from jobs.models import Job, JobKind, JobStatus
from jobs.selectors import jobs_filtered
from studio.accounts.models import Team
from tests.factories import make_team, make_token, make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def team() -> Team:
    return make_team("alpha")


@pytest.fixture
def reader(team: Team) -> User:
    return make_user(team, role="viewer")


def job(team: Team, name: str, status: str, kind: str = JobKind.TRAINING) -> Job:
    return Job.objects.create(
        team=team,
        name=name,
        kind=kind,
        image="studiolo/x:1",
        instance_type="ml.local.small",
        status=status,
        secondary_status=status,
    )


@pytest.fixture
def jobs(team: Team) -> dict[str, Job]:
    other = make_team("beta")
    made = [
        job(team, "Churn-Train", JobStatus.COMPLETED),
        job(team, "churn-eval", JobStatus.FAILED),
        job(team, "churn-score", JobStatus.IN_PROGRESS, kind=JobKind.TRANSFORM),
        job(team, "iris", JobStatus.PENDING),
        job(other, "churn-theirs", JobStatus.FAILED),
    ]
    return {j.name: j for j in made}


def names(queryset: Any) -> set[str]:
    return {j.name for j in queryset}


def test_the_filter_narrows_by_team_status_kind_and_name_in_any_case(
    team: Team, reader: User, jobs: dict[str, Job]
) -> None:
    assert names(jobs_filtered(reader)) == {"Churn-Train", "churn-eval", "churn-score", "iris"}
    assert names(jobs_filtered(reader, name="CHURN")) == {
        "Churn-Train",
        "churn-eval",
        "churn-score",
    }
    assert names(jobs_filtered(reader, statuses={JobStatus.FAILED, JobStatus.PENDING})) == {
        "churn-eval",
        "iris",
    }
    assert names(jobs_filtered(reader, statuses=())) == names(jobs_filtered(reader))
    assert names(jobs_filtered(reader, kind=JobKind.TRANSFORM)) == {"churn-score"}
    assert names(jobs_filtered(reader, team=team, name="churn", statuses={"Failed"})) == {
        "churn-eval"
    }
    # Another team's jobs are never listed, whatever is asked.
    assert names(jobs_filtered(reader, team=jobs["churn-theirs"].team)) == set()
    assert names(jobs_filtered(make_user(), name="churn")) == set()


def test_the_api_and_the_jobs_page_list_the_same_jobs(
    client: Client, reader: User, jobs: dict[str, Job]
) -> None:
    auth = {"HTTP_AUTHORIZATION": f"Bearer {make_token(reader)}"}
    api = client.get("/api/v1/jobs", {"team": "alpha", "status": "Failed", "name": "CHURN"}, **auth)
    assert api.status_code == 200
    from_api = {row["name"] for row in api.json()["results"]}
    client.force_login(reader)
    page = client.get("/jobs/", {"status": "failed", "q": "CHURN"}).content.decode()
    on_page = set(re.findall(r'href="/jobs/\d+/">([^<]+)</a>', page))
    assert from_api == on_page == {"churn-eval"}
