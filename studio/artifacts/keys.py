"""Artifact keys: the one set of rules every store applies before touching storage.

A key is a relative POSIX path such as ``runs/42/model.tar.gz``. Both backends share these
rules so that a key accepted by one store is accepted by every other (an install can move
from a local folder to S3 without renaming anything), and so that no key can climb out of
a store's root or prefix.
"""

from __future__ import annotations

import unicodedata
from typing import Protocol

from studio.artifacts.errors import InvalidArtifactKey

# S3's own limit for a whole object key, in UTF-8 bytes.
MAX_KEY_BYTES = 1024
# NAME_MAX on ext4, XFS, APFS and most other filesystems; enforced everywhere so that a key
# valid on S3 is valid in a local folder too.
MAX_SEGMENT_BYTES = 255


class _Team(Protocol):
    # studio.accounts.models.Team, or anything with its slug: the store knows no models.
    @property
    def slug(self) -> str: ...


def team_prefix(team: _Team | str) -> str:
    """Every artifact of a team (given as a Team or its slug) lives under this key prefix:
    its jobs' inputs and outputs, its uploads, its models, its runs' artifacts."""
    slug = team if isinstance(team, str) else team.slug
    return f"teams/{slug}/"


def validate_key(key: str) -> str:
    """Return the normalised form of `key`, or raise InvalidArtifactKey saying what is wrong.

    Normalisation is Unicode NFC only: macOS clients send decomposed names while Linux
    filesystems and S3 compare bytes, so without it one visible name could be two objects.
    Nothing else is rewritten; anything ambiguous is rejected rather than guessed at.
    """
    if not isinstance(key, str):
        raise InvalidArtifactKey(f"artifact key must be a string, not {type(key).__name__}")
    if not key:
        raise InvalidArtifactKey("artifact key is empty")
    for char in key:
        if unicodedata.category(char) == "Cc":  # C0 controls (NUL included), DEL and C1.
            raise InvalidArtifactKey(f"artifact key {key!r} contains a control character")
    if "\\" in key:
        raise InvalidArtifactKey(
            f"artifact key {key!r} contains a backslash; use '/' to separate folders"
        )
    if key.startswith("/"):
        raise InvalidArtifactKey(f"artifact key {key!r} is absolute; keys are relative paths")
    normalised = unicodedata.normalize("NFC", key)
    try:
        encoded_length = len(normalised.encode("utf-8"))
    except UnicodeEncodeError:  # Lone surrogates, e.g. from undecodable file names.
        raise InvalidArtifactKey(f"artifact key {key!r} is not valid Unicode") from None
    if encoded_length > MAX_KEY_BYTES:
        raise InvalidArtifactKey(
            f"artifact key {key[:40]!r}... is {encoded_length} bytes long; "
            f"the limit is {MAX_KEY_BYTES}"
        )
    for segment in normalised.split("/"):
        if not segment:
            raise InvalidArtifactKey(
                f"artifact key {key!r} has an empty path segment (leading, trailing or '//')"
            )
        if segment in (".", ".."):
            raise InvalidArtifactKey(f"artifact key {key!r} contains a {segment!r} segment")
        if len(segment.encode("utf-8")) > MAX_SEGMENT_BYTES:
            raise InvalidArtifactKey(
                f"artifact key {key!r} has a path segment longer than {MAX_SEGMENT_BYTES} bytes"
            )
    return normalised


def validate_prefix(prefix: str, *, allow_empty: bool = True) -> str:
    """Return the normalised folder prefix: "" for the whole store, else a valid key.

    Prefixes name folders, not string prefixes: "runs/1" and "runs/1/" both mean "everything
    under runs/1/" and never match "runs/10/...". One trailing slash is therefore allowed.
    `allow_empty=False` is for destructive calls, where "" would mean the whole store.
    """
    if prefix == "":
        if allow_empty:
            return ""
        raise InvalidArtifactKey(
            "artifact prefix is empty; refusing to delete the whole store", field="prefix"
        )
    if isinstance(prefix, str) and prefix.endswith("/") and not prefix.endswith("//"):
        prefix = prefix[:-1]
    try:
        return validate_key(prefix)
    except InvalidArtifactKey as error:
        raise InvalidArtifactKey(
            error.message.replace("artifact key", "artifact prefix", 1), field="prefix"
        ) from None


def is_canonical_key(key: str) -> bool:
    """True if `key` is exactly what validate_key would return for it.

    Listings skip anything else (a file named with a backslash, an S3 folder marker ending
    in "/", a decomposed Unicode name written by another tool): the store could not
    address such an object again, so offering it would only lead to errors later.
    """
    try:
        return validate_key(key) == key
    except InvalidArtifactKey:
        return False
