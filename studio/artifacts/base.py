"""The interface every artifact store implements, and the record it returns for an object."""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import TYPE_CHECKING, BinaryIO

if TYPE_CHECKING:
    from collections.abc import Iterator
    from datetime import datetime


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    """One stored object: its key in the store, size in bytes, and last write (aware, UTC)."""

    key: str
    size: int
    last_modified: datetime


class ArtifactStore(abc.ABC):
    """A flat namespace of immutable-ish blobs addressed by relative POSIX keys.

    Every method validates its key (see `keys.validate_key`) before any I/O and raises
    InvalidArtifactKey for a bad one. Missing objects raise ArtifactNotFound; a store that
    cannot be reached, read or written raises ArtifactStoreUnavailable. Library errors
    (OSError, botocore) never escape.

    Prefixes are folders: `list("runs/1")` and `list("runs/1/")` both return everything
    under `runs/1/` and never `runs/10/...`.
    """

    @abc.abstractmethod
    def put(self, key: str, data: bytes | BinaryIO, content_type: str | None = None) -> ObjectInfo:
        """Store `data` (bytes, or a binary file read from its current position) under `key`.

        Replaces any existing object; readers see the old or the new content, never a mix.
        """

    @abc.abstractmethod
    def get(self, key: str) -> bytes:
        """Return the whole content of the object; use `open` for large objects."""

    @abc.abstractmethod
    def open(self, key: str) -> BinaryIO:
        """Return a binary file for streaming the object; the caller must close it."""

    @abc.abstractmethod
    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Yield every object under the folder `prefix` (recursively), sorted by key."""

    @abc.abstractmethod
    def exists(self, key: str) -> bool:
        """True if an object is stored under `key`."""

    @abc.abstractmethod
    def stat(self, key: str) -> ObjectInfo:
        """Return the object's size and last write time without reading it."""

    @abc.abstractmethod
    def delete(self, key: str) -> None:
        """Delete the object; deleting a missing object is not an error."""

    @abc.abstractmethod
    def delete_prefix(self, prefix: str) -> int:
        """Delete every object under the folder `prefix` and return how many were deleted.

        An empty prefix is refused: wiping a whole store must not be one typo away.
        """

    @abc.abstractmethod
    def uri(self, key: str) -> str:
        """Return the URI of `key` in this store (`file://...` or `s3://...`)."""

    @abc.abstractmethod
    def key_from_uri(self, uri: str) -> str:
        """Return the key that `uri` names; InvalidArtifactKey if it is not in this store."""

    @abc.abstractmethod
    def check(self) -> None:
        """Readiness probe: raise ArtifactStoreUnavailable (short reason) unless writable."""

    @abc.abstractmethod
    def describe(self) -> str:
        """A one-line human description of where objects go, for logs and status pages."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.describe()}>"
