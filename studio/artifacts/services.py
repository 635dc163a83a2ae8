"""Team-scoped access to the artifact store for the API and the CLI.

Every team owns the keys below `teams/<slug>/`; a key elsewhere, or of another team, is
reported as not found (no leaks), and writing needs a role that may submit work and a key
the platform does not own (`protection.py`: job outputs, archives pinned by packages).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser

from studio.accounts.models import Team
from studio.accounts.roles import Action
from studio.accounts.selectors import team_for_user
from studio.accounts.services import require_permission
from studio.artifacts import ObjectInfo, get_store, validate_key, validate_prefix
from studio.artifacts.buckets import bucket_uri, split_s3_uri, team_for_bucket
from studio.artifacts.errors import ArtifactStoreError
from studio.artifacts.protection import require_user_writable
from studio.audit.services import audit_record
from studio.errors import NotFound, ValidationError

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


@dataclass(frozen=True, slots=True)
class Located:
    """Where a URI points: the team whose area holds it and the key (an object or a folder)."""

    team: Team
    key: str

    @property
    def uri(self) -> str:
        """The store's own URI of the key (what the studio reports elsewhere)."""
        return get_store().uri(self.key)

    @property
    def s3_uri(self) -> str:
        """The same place as `s3://<team bucket>/...`."""
        return bucket_uri(self.team, self.key)


def artifact_locate(*, user: User, uri: str) -> Located:
    """The team and key that `uri` names, for a member of that team: the store's own URI or
    `s3://<team bucket>/<key>` (a trailing "/" is ignored). Any other place, another team's
    bucket and a bucket nobody has are NotFound, as is any object of a team the user is not in.
    """
    if not uri:
        raise ValidationError("uri: required", field="uri")
    wanted = uri.rstrip("/")
    store = get_store()
    try:
        key = store.key_from_uri(wanted)
    except ArtifactStoreError:
        key = None
    if key is not None:
        try:
            return Located(team_of_key(user, key), key)
        except NotFound:
            pass  # perhaps an S3 store whose bucket is also a team's bucket name: see below
    parts = split_s3_uri(uri)
    team = team_for_bucket(parts[0]) if parts is not None else None
    if parts is None or team is None:
        raise NotFound(f"{uri} not found", field="uri")
    try:
        team = team_for_user(user, team.slug)
    except NotFound:
        raise NotFound(f"{uri} not found", field="uri") from None
    relative = parts[1].rstrip("/")
    if not relative:
        return Located(team, f"teams/{team.slug}")
    try:
        return Located(team, validate_key(f"teams/{team.slug}/{relative}"))
    except ArtifactStoreError as error:
        raise ValidationError(f"uri: {error.message}", field="uri") from None


def artifact_get(*, user: User, key: str) -> tuple[BinaryIO, ObjectInfo]:
    """An object of the user's team, opened for streaming (the caller closes it)."""
    key = validate_key(key)
    team = team_of_key(user, key)
    require_permission(user=user, team=team, action=Action.VIEW)
    store = get_store()
    info = store.stat(key)
    return store.open(key), info
