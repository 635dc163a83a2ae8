"""Test data made through the services, so tests exercise the same rules as the app."""

from __future__ import annotations

import itertools

from django.contrib.auth.models import User

from studio.accounts import services
from studio.accounts.models import Team

_names = itertools.count(1)


def make_team(slug: str | None = None) -> Team:
    return services.team_create(slug=slug or f"team-{next(_names)}")


def make_user(
    team: Team | None = None, role: str = "scientist", username: str | None = None
) -> User:
    user, _ = services.user_create(
        username=username or f"user{next(_names)}", password="pw-for-tests-1"
    )
    if team is not None:
        services.membership_set(team=team, user=user, role=role)
    return user


def make_token(user: User) -> str:
    _, secret = services.token_create(user=user, name="tests")
    return secret
