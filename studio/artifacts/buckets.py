"""A team's area of the store (`teams/<slug>/`), addressed as an S3 bucket of its own.

Every team has a bucket name, `studiolo-<slug>`, and `s3://studiolo-<slug>/<key>` names the
object `teams/<slug>/<key>` whatever the store's backend (a local folder or S3): a URI written
for SageMaker needs only its bucket changed. The store's own URIs (`file:///...` or
`s3://<store bucket>/<prefix>/teams/<slug>/...`) keep working, and are what the studio reports
(job outputs, model archives): they are what the runners and stored jobs already hold.

The names themselves (`team_bucket`, `team_for_bucket`, valid for every slug and one to one)
are studio.accounts.buckets': the accounts API shows them and may not import the store.

Resolution (`key_for_uri`) prefers the store's own reading of a URI: with an S3 store whose
bucket happens to be a team's bucket name, `s3://<that bucket>/teams/<slug>/...` is the
store's URI. Anything that is neither, and another team's bucket, "does not exist".
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from studio.accounts.buckets import team_bucket, team_for_bucket
from studio.accounts.models import Team
from studio.artifacts.errors import ArtifactStoreError
from studio.artifacts.keys import team_prefix, validate_key
from studio.errors import ValidationError

if TYPE_CHECKING:
    from studio.artifacts.base import ArtifactStore

__all__ = ["bucket_uri", "key_for_uri", "split_s3_uri", "team_bucket", "team_for_bucket"]

_S3_URI = re.compile(r"^s3://([^/]*)(?:/(.*))?$", re.DOTALL)


def bucket_uri(team: Team | str, key: str) -> str:
    """`s3://<team bucket>/<key relative to the team's area>` for a key inside that area
    (`teams/<slug>` itself is the whole bucket, `s3://<team bucket>/`)."""
    prefix = team_prefix(team)
    if key == prefix.rstrip("/"):
        key = prefix
    if not key.startswith(prefix):
        raise ValueError(f"{key!r} is not in the area of team {team}")
    return f"s3://{team_bucket(team)}/{key[len(prefix) :]}"


def split_s3_uri(uri: str) -> tuple[str, str] | None:
    """(bucket, rest) of an `s3://bucket[/rest]` URI, or None for anything else."""
    match = _S3_URI.match(uri)
    if match is None:
        return None
    return match.group(1), match.group(2) or ""


def key_for_uri(store: ArtifactStore, uri: str, team: Team, *, field: str) -> str:
    """The key that `uri` names inside `team`'s area of `store`, or a ValidationError naming
    `field`. Accepted: the store's own URI of a key in the team's area, or `s3://<team
    bucket>/<key>`; a trailing "/" is ignored (a folder). The team's whole area is
    `s3://<team bucket>/` (key `teams/<slug>`)."""
    if not isinstance(uri, str) or not uri:
        raise ValidationError(f"{field}: a URI is required", field=field)
    wanted = uri.rstrip("/")
    area = team_prefix(team)
    native: ArtifactStoreError | None = None
    try:
        key = store.key_from_uri(wanted)
    except ArtifactStoreError as error:
        native = error
    else:
        if (key + "/").startswith(area):
            return key
    parts = split_s3_uri(uri)
    if parts is not None and parts[0] == team_bucket(team):
        relative = parts[1].rstrip("/")
        if not relative:
            return area.rstrip("/")
        try:
            return validate_key(area + relative)
        except ArtifactStoreError as error:
            raise ValidationError(f"{field}: {error.message}", field=field) from None
    if native is not None and parts is None and not uri.startswith("file://"):
        # Not a URI the studio could ever read (a path, http://...): say what is expected.
        raise ValidationError(
            f"{field}: {uri} is not a URI of the artifact store; "
            f"expected s3://{team_bucket(team)}/<key>",
            field=field,
        )
    # Outside the team's area, another team's bucket, or a bucket nobody has: for this team
    # the same as not existing (no hint about what other teams hold).
    raise ValidationError(f"{field}: {uri} does not exist", field=field)
