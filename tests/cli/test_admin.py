"""`studiolo user ...` and `studiolo token ...` act on the database through the services."""

from __future__ import annotations

import io

import pytest
from django.contrib.auth import authenticate
from django.contrib.auth.models import User

from studio.accounts.models import ApiToken, Membership
from studio.accounts.services import token_authenticate, token_create
from studio.audit.models import AuditEvent
from studio.cli.main import main
from tests.factories import make_team, make_user

pytestmark = pytest.mark.django_db


def test_user_create_makes_team_membership_and_shows_the_generated_password_once(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["user", "create", "alice", "--team", "ml", "--role", "scientist"]) == 0
    out = capsys.readouterr().out
    password = next(line for line in out.splitlines() if line.startswith("Password: "))
    password = password.removeprefix("Password: ").split()[0]
    assert authenticate(username="alice", password=password) is not None
    membership = Membership.objects.get(user__username="alice")
    assert (membership.team.slug, membership.role) == ("ml", "scientist")
    assert "Created team ml" in out


def test_user_create_reads_the_password_from_stdin_and_never_prints_it(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("a long enough passphrase\n"))
    argv = ["user", "create", "bob", "--team", "ml", "--role", "viewer", "--password-stdin"]
    assert main([*argv, "--email", "bob@example.org"]) == 0
    captured = capsys.readouterr()
    assert "passphrase" not in captured.out + captured.err
    assert "Password:" not in captured.out
    user = authenticate(username="bob", password="a long enough passphrase")
    assert user is not None
    assert user.email == "bob@example.org"


def test_user_create_on_an_existing_user_changes_their_role(
    capsys: pytest.CaptureFixture[str],
) -> None:
    team = make_team("ml")
    make_user(team, role="viewer", username="carol")
    assert main(["user", "create", "carol", "--team", "ml", "--role", "approver"]) == 0
    out = capsys.readouterr().out
    assert "exists" in out
    assert "Password:" not in out
    assert Membership.objects.get(user__username="carol", team=team).role == "approver"
    assert AuditEvent.objects.filter(action="membership.role_changed", actor_name="system").exists()


def test_user_create_with_a_bad_role_fails_cleanly_and_creates_nothing(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["user", "create", "dave", "--team", "new-team", "--role", "boss"]) == 1
    captured = capsys.readouterr()
    assert captured.err.startswith("studiolo: role: expected one of")
    assert "Traceback" not in captured.err
    assert captured.out == ""  # nothing claimed that the rollback undid
    assert not User.objects.filter(username="dave").exists()


def test_user_create_without_a_role_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["user", "create", "erin", "--team", "ml"]) == 2
    assert "--role" in capsys.readouterr().err


def test_user_list_shows_teams_and_roles(capsys: pytest.CaptureFixture[str]) -> None:
    make_user(make_team("vision"), role="admin", username="frank")
    assert main(["user", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:3] == ["USERNAME", "EMAIL", "TEAMS"]
    assert any(line.startswith("frank ") and "vision:admin" in line for line in lines)


def test_set_password_from_stdin(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    make_user(username="gina")
    monkeypatch.setattr("sys.stdin", io.StringIO("brand new passphrase\n"))
    assert main(["user", "set-password", "gina", "--password-stdin"]) == 0
    assert capsys.readouterr().out == "Password of gina changed\n"
    assert authenticate(username="gina", password="brand new passphrase") is not None
    assert AuditEvent.objects.filter(action="user.password_set", actor_name="system").exists()


def test_set_password_rejects_a_weak_password(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    make_user(username="hugo")
    monkeypatch.setattr("sys.stdin", io.StringIO("short\n"))
    assert main(["user", "set-password", "hugo", "--password-stdin"]) == 1
    assert "too short" in capsys.readouterr().err


def test_token_create_prints_the_token_alone_on_stdout_and_it_authenticates(
    capsys: pytest.CaptureFixture[str],
) -> None:
    user = make_user(username="ivan")
    assert main(["token", "create", "ivan", "--name", "laptop", "--expires-days", "7"]) == 0
    captured = capsys.readouterr()
    assert captured.out.count("\n") == 1
    secret = captured.out.strip()
    assert token_authenticate(secret) == user
    assert "laptop" in captured.err  # the notes go to stderr
    token = ApiToken.objects.get(user=user)
    assert token.name == "laptop"
    assert token.expires_at is not None
    event = AuditEvent.objects.get(action="token.created")
    assert event.actor_name == "system"


def test_token_list_and_revoke(capsys: pytest.CaptureFixture[str]) -> None:
    make_user(username="judy")
    assert main(["token", "create", "judy"]) == 0
    secret = capsys.readouterr().out.strip()
    token = ApiToken.objects.get(user__username="judy")

    assert main(["token", "list", "judy"]) == 0
    listing = capsys.readouterr().out
    assert token.prefix in listing
    assert secret not in listing
    assert "active" in listing

    assert main(["token", "revoke", "judy", str(token.pk)]) == 0
    assert token_authenticate(secret) is None
    assert main(["token", "revoke", "judy", str(token.pk)]) == 0
    assert "already revoked" in capsys.readouterr().out


def test_commands_on_an_unknown_user_or_token_fail_with_a_message(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["token", "create", "nobody"]) == 1
    assert capsys.readouterr().err == "studiolo: user 'nobody' not found\n"
    make_user(username="kate")
    assert main(["token", "revoke", "kate", "999"]) == 1
    assert capsys.readouterr().err == "studiolo: kate has no token 999\n"


def test_user_deactivate_stops_tokens_and_activate_lets_them_in_again(
    capsys: pytest.CaptureFixture[str],
) -> None:
    user = make_user(username="ivy")
    _, secret = token_create(user=user, name="cli")
    assert main(["user", "deactivate", "ivy"]) == 0
    assert capsys.readouterr().out == "ivy is now deactivated\n"
    assert token_authenticate(secret) is None
    assert authenticate(username="ivy", password="pw-for-tests-1") is None
    assert main(["user", "deactivate", "ivy"]) == 0
    assert capsys.readouterr().out == "ivy was already deactivated\n"
    assert main(["user", "activate", "ivy"]) == 0
    assert token_authenticate(secret) == user
    actions = list(
        AuditEvent.objects.filter(action__startswith="user.", object_repr="ivy")
        .order_by("id")
        .values_list("action", "actor_name")
    )
    assert actions[-2:] == [("user.deactivated", "system"), ("user.activated", "system")]
