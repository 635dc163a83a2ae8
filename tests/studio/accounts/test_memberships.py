"""Team admins add members and change roles through the accounts services; the check the
settings page asks (`membership_change_refusal`) and those services agree."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User

from studio.accounts import services
from studio.accounts.models import Membership, Team
from studio.audit.models import AuditEvent
from studio.errors import Conflict, NotFound, PermissionDenied, StudioloError
from tests.factories import make_team, make_user

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("role", ["viewer", "scientist", "approver", "admin"])
def test_the_membership_check_and_adding_agree(role: str) -> None:
    team = make_team()
    actor = make_user(team, role=role)
    newcomer = make_user(username="newcomer")
    refusal = services.membership_change_refusal(team=team, actor=actor)
    assert (refusal is None) is (role == "admin")
    if refusal is None:
        added = services.membership_add(
            team=team, username="newcomer", role="scientist", actor=actor
        )
        assert (added.user, added.role) == (newcomer, "scientist")
    else:
        with pytest.raises(StudioloError) as raised:
            services.membership_add(team=team, username="newcomer", role="scientist", actor=actor)
        assert (type(raised.value), raised.value.message) == (type(refusal), refusal.message)
        assert not Membership.objects.filter(user=newcomer).exists()


def test_adding_is_audited_with_its_actor() -> None:
    team = make_team()
    admin = make_user(team, role="admin", username="root")
    make_user(username="newcomer")
    services.membership_add(team=team, username=" newcomer ", role="viewer", actor=admin)
    event = AuditEvent.objects.get(action="membership.added", details__user="newcomer")
    assert (event.actor_name, event.details["role"]) == ("root", "viewer")


def test_who_may_not_manage_never_learns_which_usernames_exist() -> None:
    team = make_team()
    viewer = make_user(team, role="viewer")
    with pytest.raises(PermissionDenied):
        services.membership_add(team=team, username="nobody-here", role="viewer", actor=viewer)


def test_an_unknown_user_or_a_member_already_is_named_as_the_username() -> None:
    team = make_team()
    admin = make_user(team, role="admin")
    with pytest.raises(NotFound) as unknown:
        services.membership_add(team=team, username="nobody-here", role="viewer", actor=admin)
    make_user(team, role="viewer", username="vera")
    with pytest.raises(Conflict) as member:
        services.membership_add(team=team, username="vera", role="admin", actor=admin)
    assert unknown.value.field == member.value.field == "username"
    assert Membership.objects.get(user__username="vera").role == "viewer"


def test_a_role_changes_only_for_a_member_of_the_team() -> None:
    team = make_team()
    admin = make_user(team, role="admin")
    vera = make_user(team, role="viewer", username="vera")
    other = make_user(make_team(), role="viewer")
    theirs = Membership.objects.get(user=other)
    with pytest.raises(NotFound):
        services.membership_role_change(
            team=team, membership_id=theirs.pk, role="admin", actor=admin
        )
    mine = Membership.objects.get(user=vera)
    changed = services.membership_role_change(
        team=team, membership_id=mine.pk, role="approver", actor=admin
    )
    assert changed.role == "approver"
    theirs.refresh_from_db()
    assert theirs.role == "viewer"
    scientist = make_user(team, role="scientist")
    with pytest.raises(PermissionDenied):
        services.membership_role_change(
            team=team, membership_id=mine.pk, role="admin", actor=scientist
        )


# --- enrolment: a user and their membership in one go (`studiolo user create`) ------------


def test_enrolling_makes_the_user_and_the_team_and_audits_each_change() -> None:
    admin = make_user(username="root")
    enrolment = services.user_enrol(
        username="alice", team_slug="ml", role="scientist", email="a@example.org", actor=admin
    )
    member = enrolment.membership
    assert (member.user.username, member.team.slug, member.role) == ("alice", "ml", "scientist")
    assert (enrolment.user_created, enrolment.team_created) == (True, True)
    assert enrolment.password is not None
    assert member.user.check_password(enrolment.password)
    assert member.user.email == "a@example.org"
    for action in ("user.created", "team.created", "membership.added"):
        assert AuditEvent.objects.filter(action=action, actor_name="root").count() == 1


def test_enrolling_an_existing_user_changes_only_the_membership() -> None:
    team = make_team("ml")
    carol = make_user(team, role="viewer", username="carol")
    enrolment = services.user_enrol(
        username="carol", team_slug="ml", role="approver", password="another long passphrase"
    )
    assert (enrolment.user_created, enrolment.team_created, enrolment.password) == (
        False,
        False,
        None,
    )
    assert enrolment.membership.role == "approver"
    carol.refresh_from_db()
    assert carol.check_password("pw-for-tests-1")  # their password stays as it was


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"role": "boss"}, "role"),
        ({"password": "short"}, "password"),
        ({"team_slug": "Bad Team"}, "team"),
    ],
)
def test_a_refused_enrolment_leaves_no_user_or_team_behind(
    changes: dict[str, str], field: str
) -> None:
    request = {"username": "dave", "team_slug": "new-team", "role": "viewer", **changes}
    with pytest.raises(StudioloError) as refused:
        services.user_enrol(**request)
    assert refused.value.field == field
    assert not User.objects.filter(username="dave").exists()
    assert not Team.objects.filter(slug__in=["new-team", "Bad Team"]).exists()
