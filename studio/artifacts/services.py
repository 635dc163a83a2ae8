"""Team-scoped access to the artifact store for the API and the CLI.

Every team owns the keys below `teams/<slug>/`; a key elsewhere, or of another team, is
reported as not found (no leaks), and writing needs a role that may submit work and a key
the platform does not own (`protection.py`: job outputs, archives pinned by packages).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import BinaryIO

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser

from studio.accounts.models import Team
from studio.accounts.roles import Action
from studio.accounts.selectors import team_for_user
from studio.accounts.services import require_permission
from studio.artifacts import ObjectInfo, get_store, validate_key, validate_prefix
from studio.artifacts.protection import require_user_writable
from studio.audit.services import audit_record
from studio.errors import NotFound

User = AbstractBaseUser | AnonymousUser


def team_of_key(user: User, key: str) -> Team:
    """The team whose area holds `key`, when `user` is one of its members; NotFound else."""
    parts = key.split("/")
    if len(parts) < 2 or parts[0] != "teams":
        raise NotFound(f"{key} not found", field="key")
    try:
        return team_for_user(user, parts[1])
    except NotFound:
        raise NotFound(f"{key} not found", field="key") from None


def artifact_put(*, user: User, key: str, data: BinaryIO) -> tuple[str, ObjectInfo]:
    key = validate_key(key)
    team = team_of_key(user, key)
    require_permission(user=user, team=team, action=Action.SUBMIT_JOB)
    require_user_writable(key)
    store = get_store()
    info = store.put(key, data)
    audit_record(
        actor=user,
        action="artifact.uploaded",
        object_type="artifact",
        object_id=key[:64],
        object_repr=key,
        team=team,
        details={"size": info.size},
    )
    return store.uri(key), info


def artifact_list(*, user: User, prefix: str) -> Iterator[ObjectInfo]:
    prefix = validate_prefix(prefix, allow_empty=False)
    team = team_of_key(user, prefix.rstrip("/") + "/x")
    require_permission(user=user, team=team, action=Action.VIEW)
    return get_store().list(prefix)
