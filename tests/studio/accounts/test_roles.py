"""The role matrix: who may do what in a team, and 404 (not 403) for outsiders."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.test import Client

from studio.accounts import services
from studio.accounts.roles import MINIMUM_ROLE, ROLE_ORDER, Action, Role, permission_matrix_markdown
from studio.errors import NotFound, PermissionDenied
from tests.factories import make_team, make_token, make_user

EXPECTED = {
    # action: roles allowed, written out by hand so a change to the matrix is deliberate
    Action.VIEW: {"viewer", "scientist", "approver", "admin"},
    Action.TRACK: {"scientist", "approver", "admin"},
    Action.SUBMIT_JOB: {"scientist", "approver", "admin"},
    Action.STOP_JOB: {"scientist", "approver", "admin"},
    Action.REGISTER_MODEL: {"scientist", "approver", "admin"},
    Action.DEPLOY: {"scientist", "approver", "admin"},
    Action.INVOKE: {"scientist", "approver", "admin"},
    Action.APPROVE_MODEL: {"approver", "admin"},
    Action.MANAGE_TEAM: {"admin"},
}


def test_every_action_has_a_minimum_role() -> None:
    assert set(MINIMUM_ROLE) == set(Action)
    assert set(EXPECTED) == set(Action)


@pytest.mark.django_db
@pytest.mark.parametrize("role", [r.value for r in ROLE_ORDER])
@pytest.mark.parametrize("action", list(Action))
def test_role_matrix(role: str, action: Action) -> None:
    team = make_team()
    user = make_user(team, role=role)
    if role in EXPECTED[action]:
        assert services.require_permission(user=user, team=team, action=action) == role
    else:
        with pytest.raises(PermissionDenied):
            services.require_permission(user=user, team=team, action=action)


@pytest.mark.django_db
@pytest.mark.parametrize("action", list(Action))
def test_non_member_gets_not_found_for_every_action(action: Action) -> None:
    team = make_team()
    outsider = make_user(make_team())
    with pytest.raises(NotFound):
        services.require_permission(user=outsider, team=team, action=action)


def test_permission_docs_match_the_code() -> None:
    docs = (Path(__file__).resolve().parents[3] / "docs" / "permissions.md").read_text()
    assert permission_matrix_markdown() in docs


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("role", "status"),
    [("viewer", 403), ("scientist", 403), ("approver", 403), ("admin", 201)],
)
def test_only_admins_add_members_through_the_api(client: Client, role: str, status: int) -> None:
    team = make_team()
    actor = make_user(team, role=role)
    newcomer = make_user(username=f"new-{role}")
    response = client.post(
        f"/api/v1/teams/{team.slug}/members",
        {"username": newcomer.username, "role": "viewer"},
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {make_token(actor)}",
    )
    assert response.status_code == status, response.content
    assert team.memberships.filter(user=newcomer).exists() is (status == 201)


@pytest.mark.django_db
def test_bad_role_is_a_400_naming_the_field(client: Client) -> None:
    team = make_team()
    admin = make_user(team, role="admin")
    response = client.post(
        f"/api/v1/teams/{team.slug}/members",
        {"username": admin.username, "role": "owner"},
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {make_token(admin)}",
    )
    assert response.status_code == 400
    assert response.json()["error"]["field"] == "role"
    assert team.memberships.get(user=admin).role == Role.ADMIN


@pytest.mark.django_db
@pytest.mark.parametrize("role", [r.value for r in ROLE_ORDER])
@pytest.mark.parametrize("action", list(Action))
def test_the_refusal_check_and_the_raising_check_agree(role: str, action: Action) -> None:
    team = make_team()
    user = make_user(team, role=role)
    refusal = services.permission_refusal(user=user, team=team, action=action)
    if role in EXPECTED[action]:
        assert refusal is None
        assert services.require_permission(user=user, team=team, action=action) == role
    else:
        assert isinstance(refusal, PermissionDenied)
        with pytest.raises(PermissionDenied, match=refusal.message):
            services.require_permission(user=user, team=team, action=action)


@pytest.mark.django_db
def test_the_refusal_check_gives_an_outsider_not_found() -> None:
    team = make_team()
    outsider = make_user(make_team())
    assert isinstance(
        services.permission_refusal(user=outsider, team=team, action=Action.VIEW), NotFound
    )
