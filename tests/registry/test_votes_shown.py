"""A package shows the votes that decided it: an Approved package lists its approvals (it
showed `approvals: 0, votes: []`, its page "0 votes this round" and the group page "—"),
and a round still open shows its own votes."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from rest_framework.test import APIClient

from registry.models import ApprovalStatus
from studio.accounts.models import Team
from tests.factories import make_team, make_user
from tests.registry.conftest import make_group, registered

pytestmark = pytest.mark.django_db


@pytest.fixture
def team() -> Team:
    return make_team()


def decide(user: User, team: Team, what: str, comment: str) -> dict[str, Any]:
    client = APIClient()
    client.force_authenticate(user)
    response = client.post(
        f"/api/v1/teams/{team.slug}/model-groups/churn/packages/1/{what}",
        {"comment": comment},
        format="json",
    )
    assert response.status_code == 200, response.content
    body: dict[str, Any] = response.json()["package"]
    return body


def package(user: User, team: Team) -> dict[str, Any]:
    client = APIClient()
    client.force_authenticate(user)
    body: dict[str, Any] = client.get(
        f"/api/v1/teams/{team.slug}/model-groups/churn/packages/1"
    ).json()
    return body


def shown(body: dict[str, Any]) -> tuple[str, int, bool, list[tuple[str, str]]]:
    votes = [(v["actor"], v["decision"]) for v in body["votes"]]
    return body["approval_status"], body["approvals"], body["votes_decided"], votes


def test_each_status_shows_the_votes_that_led_to_it(team: Team) -> None:
    author = make_user(team, role="scientist", username="author")
    ann, bob = (make_user(team, role="approver", username=n) for n in ("ann", "bob"))
    registered(make_group(team, author, approvals=2), author, "train-1")
    pending = decide(ann, team, "approve", "good")
    assert shown(pending) == (ApprovalStatus.PENDING, 1, False, [("ann", "approve")])
    approved = decide(bob, team, "approve", "agreed")
    expected = (ApprovalStatus.APPROVED, 2, True, [("ann", "approve"), ("bob", "approve")])
    assert shown(approved) == expected
    assert shown(package(author, team)) == expected
    rejected = decide(ann, team, "reject", "drift found")
    assert shown(rejected) == (ApprovalStatus.REJECTED, 0, True, [("ann", "reject")])
    # Approving it again takes two approvals: the open round shows how far it got.
    again = decide(bob, team, "approve", "drift fixed")
    assert shown(again) == (ApprovalStatus.REJECTED, 1, False, [("bob", "approve")])


def test_the_pages_show_who_approved_it(team: Team) -> None:
    author = make_user(team, role="scientist", username="author")
    ann, bob = (make_user(team, role="approver", username=n) for n in ("ann", "bob"))
    registered(make_group(team, author, approvals=2), author, "train-1")
    decide(ann, team, "approve", "good")
    decide(bob, team, "approve", "agreed")
    client = Client()
    client.force_login(author)
    page = client.get("/models/churn/1/")
    assert page.status_code == 200
    assert page.context["approvals"] == 2
    assert [v.actor.username for v in page.context["votes"]] == ["ann", "bob"]
    assert b"decided by 2 votes" in page.content
    group = client.get("/models/churn/")
    assert [row["votes"].approvals for row in group.context["rows"]] == [2]
    assert b"2 of 2" in group.content
