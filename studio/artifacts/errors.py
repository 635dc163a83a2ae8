"""Errors raised by artifact stores.

Each one is also one of the project's domain errors, so API views, the UI and the CLI turn
them into the right 4xx/5xx answer without knowing about artifact stores. The domain class
comes first in each list of bases so that its `code` and `status` win.
"""

from __future__ import annotations

from studio.errors import NotFound, StudioloError, Unavailable, ValidationError


class ArtifactStoreError(StudioloError):
    """Base of every artifact store error; catch this to handle any of them."""


class InvalidArtifactKey(ValidationError, ArtifactStoreError):
    """A key (or prefix, or URI) that the store refuses to address: the caller's mistake."""

    def __init__(self, message: str, *, field: str | None = "key") -> None:
        super().__init__(message, field=field)


class ArtifactNotFound(NotFound, ArtifactStoreError):
    """No object is stored under the key."""


class ArtifactStoreUnavailable(Unavailable, ArtifactStoreError):
    """The store cannot be reached, read or written: a platform failure, not the caller's."""
