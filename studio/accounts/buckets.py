"""A team's bucket name: its area of the artifact store addressed as an S3 bucket.

Every team has one, `studiolo-<slug>`; `s3://studiolo-<slug>/<key>` names the object
`teams/<slug>/<key>` of the store (studio.artifacts.buckets resolves such URIs). The name lives
here, with the team, because the accounts API shows it and may not import the store.

A slug is 1-64 characters of `[a-z0-9-]`, starting and ending with a letter or digit
(services.members); a bucket name is 3-63 characters of `[a-z0-9.-]` with the same ends.
`studiolo-<slug>` is therefore a valid bucket name whenever it fits in 63 characters (slugs of
up to 54). A longer slug keeps its first 45 characters and gets a dot and 8 hex digits of its
SHA-256: a slug never holds a dot, so the two shapes cannot meet, and the mapping stays one to
one (reversed through the database, `team_for_bucket`).
"""

from __future__ import annotations

import hashlib
import re

from studio.accounts.models import Team

BUCKET_PREFIX = "studiolo-"
MAX_BUCKET_LENGTH = 63
# The hashed shape: BUCKET_PREFIX + head + "." + DIGEST_LENGTH hex digits = 63 characters.
DIGEST_LENGTH = 8
_HEAD_LENGTH = MAX_BUCKET_LENGTH - len(BUCKET_PREFIX) - 1 - DIGEST_LENGTH
# S3's rules for general purpose buckets: 3-63 characters, lower-case letters, digits, dots
# and hyphens, a letter or digit at each end, no "..", not shaped like an IP address.
_BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_IP_ADDRESS = re.compile(r"^\d+\.\d+\.\d+\.\d+$")


def is_bucket_name(name: str) -> bool:
    """True if `name` is a valid S3 bucket name."""
    return bool(_BUCKET_NAME.match(name)) and ".." not in name and not _IP_ADDRESS.match(name)


def team_bucket(team: Team | str) -> str:
    """The bucket name of a team (given as a Team or its slug)."""
    slug = team if isinstance(team, str) else team.slug
    name = BUCKET_PREFIX + slug
    if len(name) <= MAX_BUCKET_LENGTH:
        return name
    head = slug[:_HEAD_LENGTH].rstrip("-")
    return f"{BUCKET_PREFIX}{head}.{_digest(slug)}"


def team_for_bucket(bucket: str) -> Team | None:
    """The team whose bucket is `bucket`, or None."""
    if not is_bucket_name(bucket) or not bucket.startswith(BUCKET_PREFIX):
        return None
    rest = bucket[len(BUCKET_PREFIX) :]
    head, dot, _ = rest.rpartition(".")
    if not dot:
        return Team.objects.filter(slug=rest).first()
    # The hashed shape: few teams share the first 45 characters of their slug.
    for team in Team.objects.filter(slug__startswith=head):
        if team_bucket(team) == bucket:
            return team
    return None


def _digest(slug: str) -> str:
    return hashlib.sha256(slug.encode()).hexdigest()[:DIGEST_LENGTH]
