"""`studiolo user ...` and `studiolo token ...`: administration straight on the instance's
database (same environment as `studiolo up`), through the account services.

The actor of every change is the system: the audit log records "system", since whoever
runs these commands has the machine, not a studio account.
"""

from __future__ import annotations

import argparse
import logging
import sys
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from studio.cli.common import CliError, config_load, django_setup, require_migrated
from studio.cli.output import print_table

if TYPE_CHECKING:
    from django.contrib.auth.models import User

ROLES_HELP = "viewer, scientist, approver or admin"


def _setup() -> None:
    config = config_load()
    django_setup()
    require_migrated()
    from studio import embedded_redis

    if config.redis_embedded and not embedded_redis.is_running(config.embedded_redis_socket):
        # Live events go through Redis to browsers of a running studio. With the embedded
        # Redis down no studio runs, nobody listens, and a warning per event is only noise.
        logging.getLogger("studio.events").setLevel(logging.ERROR)


def _password_from_stdin() -> str:
    """The first line of stdin, so `echo "$PW" | studiolo ...` and here-strings both work."""
    password = sys.stdin.readline().rstrip("\r\n")
    if not password:
        raise CliError("--password-stdin: no password on standard input")
    return password


def _user_get(username: str) -> User:
    from django.contrib.auth import get_user_model

    from studio.errors import NotFound

    user = get_user_model().objects.filter(username=username).first()
    if user is None:
        raise NotFound(f"user {username!r} not found")
    return user


def _when(moment: datetime | None) -> str | None:
    return moment.strftime("%Y-%m-%d %H:%M UTC") if moment is not None else None


# --- users -----------------------------------------------------------------------------


def user_create(args: argparse.Namespace) -> int:
    _setup()
    from studio.accounts import services

    password = _password_from_stdin() if args.password_stdin else None
    # One transaction in the service: a bad role or team name leaves no half-made user
    # behind, and the report is printed only once everything is committed.
    enrolment = services.user_enrol(
        username=args.username,
        team_slug=args.team,
        role=args.role,
        password=password,
        email=args.email or "",
    )
    username = enrolment.membership.user.get_username()
    team = enrolment.membership.team.slug
    report = [
        f"Created user {username}"
        if enrolment.user_created
        else f"User {username} exists; setting the membership only"
    ]
    if enrolment.team_created:
        report.append(f"Created team {team}")
    report.append(f"{username} is {enrolment.membership.role} in team {team}")
    print("\n".join(report))
    if not enrolment.user_created and password is not None:
        print("note: password left unchanged (use `studiolo user set-password`)", file=sys.stderr)
    if enrolment.password is not None:
        print(f"Password: {enrolment.password}   (shown once)")
    return 0


def user_list(args: argparse.Namespace) -> int:
    _setup()
    from django.contrib.auth import get_user_model

    users = get_user_model().objects.order_by("username").prefetch_related("memberships__team")
    print_table(
        ["username", "email", "teams", "active", "superuser", "last login"],
        [
            [
                user.username,
                user.email,
                ", ".join(f"{m.team.slug}:{m.role}" for m in user.memberships.all()),
                user.is_active,
                user.is_superuser,
                _when(user.last_login),
            ]
            for user in users
        ],
        empty="(no users: `studiolo up` creates the first one)",
    )
    return 0


def user_set_password(args: argparse.Namespace) -> int:
    _setup()
    from studio.accounts import services

    user = _user_get(args.username)
    if args.password_stdin:
        password = _password_from_stdin()
    elif sys.stdin.isatty():
        import getpass

        password = getpass.getpass(f"New password for {user.username}: ")
        if getpass.getpass("Again: ") != password:
            raise CliError("the two passwords differ")
    else:
        raise CliError("no terminal to ask for a password: pipe it in with --password-stdin")
    services.user_password_set(user=user, password=password)
    print(f"Password of {user.username} changed")
    return 0


def user_set_active(args: argparse.Namespace) -> int:
    _setup()
    from studio.accounts import services

    user = _user_get(args.username)
    active = args.user_command == "activate"
    was = user.is_active
    services.user_set_active(user=user, active=active)
    state = "active" if active else "deactivated"
    print(f"{user.username} {'was already' if was == active else 'is now'} {state}")
    return 0


# --- tokens ----------------------------------------------------------------------------


def token_create(args: argparse.Namespace) -> int:
    _setup()
    from django.utils import timezone

    from studio.accounts import services

    user = _user_get(args.username)
    expires_at = timezone.now() + timedelta(days=args.expires_days) if args.expires_days else None
    # No actor: the audit log records "system", which is who made this token.
    token, secret = services.token_create(user=user, name=args.name, expires_at=expires_at)
    print(secret)  # alone on stdout: `export STUDIOLO_TOKEN=$(studiolo token create ...)`
    expiry = f"expires {_when(token.expires_at)}" if token.expires_at else "does not expire"
    print(
        f"token {token.pk} ({token.name}) for {user.username}; {expiry}; "
        "the secret above is shown once",
        file=sys.stderr,
    )
    return 0


def token_list(args: argparse.Namespace) -> int:
    _setup()
    from django.utils import timezone

    user = _user_get(args.username)
    now = timezone.now()

    def status(revoked_at: datetime | None, expires_at: datetime | None) -> str:
        if revoked_at is not None:
            return "revoked"
        if expires_at is not None and expires_at <= now:
            return "expired"
        return "active"

    print_table(
        ["id", "name", "prefix", "created", "last used", "expires", "status"],
        [
            [
                token.pk,
                token.name,
                token.prefix + "…",
                _when(token.created_at),
                _when(token.last_used_at),
                _when(token.expires_at),
                status(token.revoked_at, token.expires_at),
            ]
            for token in user.api_tokens.order_by("-created_at")
        ],
        empty=f"(no tokens for {user.username})",
    )
    return 0


def token_revoke(args: argparse.Namespace) -> int:
    _setup()
    from studio.accounts import services
    from studio.errors import NotFound

    user = _user_get(args.username)
    token = user.api_tokens.filter(pk=args.token_id).first()
    if token is None:
        raise NotFound(f"{user.username} has no token {args.token_id}")
    was_revoked = token.revoked_at is not None
    services.token_revoke(token=token, actor=None)
    verb = "was already revoked" if was_revoked else "revoked"
    print(f"Token {token.pk} ({token.name}) of {user.username} {verb}")
    return 0


# --- parsers ---------------------------------------------------------------------------


def _days(raw: str) -> int:
    try:
        days = int(raw)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected a whole number of days, got {raw!r}") from exc
    if days < 1:
        raise argparse.ArgumentTypeError("must be at least 1 day")
    return days


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    user = commands.add_parser("user", help="create and list users (on the instance's database)")
    user_commands = user.add_subparsers(dest="user_command", metavar="COMMAND", required=True)

    parser = user_commands.add_parser(
        "create", help="create a user and add them to a team (or change their role)"
    )
    parser.add_argument("username")
    parser.add_argument("--team", required=True, help="team slug; created when new")
    parser.add_argument("--role", required=True, help=f"role in the team: {ROLES_HELP}")
    parser.add_argument("--email", help="e-mail address")
    parser.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the password from standard input (default: generate and print one)",
    )
    parser.set_defaults(func=user_create)

    parser = user_commands.add_parser("list", help="every user with their teams and roles")
    parser.set_defaults(func=user_list)

    parser = user_commands.add_parser("set-password", help="change a user's password")
    parser.add_argument("username")
    parser.add_argument(
        "--password-stdin", action="store_true", help="read it from standard input (default: ask)"
    )
    parser.set_defaults(func=user_set_password)

    parser = user_commands.add_parser(
        "deactivate",
        help="stop a user signing in: tokens stop working, open sessions and sockets end",
    )
    parser.add_argument("username")
    parser.set_defaults(func=user_set_active)

    parser = user_commands.add_parser("activate", help="let a deactivated user sign in again")
    parser.add_argument("username")
    parser.set_defaults(func=user_set_active)

    token = commands.add_parser("token", help="API tokens of a user (on the instance's database)")
    token_commands = token.add_subparsers(dest="token_command", metavar="COMMAND", required=True)

    parser = token_commands.add_parser(
        "create", help="make a token; prints its secret alone on stdout"
    )
    parser.add_argument("username", help="the user the token acts as")
    parser.add_argument("--name", default="cli", help="a label to recognise it (default: cli)")
    parser.add_argument("--expires-days", type=_days, help="expire after N days (default: never)")
    parser.set_defaults(func=token_create)

    parser = token_commands.add_parser("list", help="a user's tokens (never their secrets)")
    parser.add_argument("username")
    parser.set_defaults(func=token_list)

    parser = token_commands.add_parser("revoke", help="revoke a token by its id")
    parser.add_argument("username")
    parser.add_argument("token_id", type=int, metavar="ID")
    parser.set_defaults(func=token_revoke)
