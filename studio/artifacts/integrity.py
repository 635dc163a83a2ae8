"""Pinning an artifact's content, and checking it while it is read back.

A model package records the sha256 and size of its archive at registration (`fingerprint`);
whatever later serves the package reads the archive through a `VerifiedReader`, which hashes
the bytes as they go by (one read, never two) and refuses the content once it is known to
differ: a size that does not match before the download starts, more bytes than pinned while
it runs, another digest at its end. Nothing here knows about packages: the caller names the
owner ("package churn/3") for the message.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from typing import TYPE_CHECKING, BinaryIO

from studio.errors import Conflict

if TYPE_CHECKING:
    from collections.abc import Buffer

    from studio.artifacts.base import ArtifactStore

_CHUNK = 1024 * 1024


@dataclass(frozen=True, slots=True)
class ArtifactPin:
    """What an artifact's content was when it was pinned."""

    sha256: str  # lower-case hex
    size: int  # bytes


class ArtifactChanged(Conflict):
    """The stored object is not the content that was pinned."""

    code = "artifact_changed"


def artifact_label(store: ArtifactStore, key: str) -> str:
    """How errors users read name an artifact: its S3 URI, or its key in a local store (whose
    URI would show a path on the studio's host)."""
    uri = store.uri(key)
    return key if uri.startswith("file:") else uri


def fingerprint(store: ArtifactStore, key: str) -> ArtifactPin:
    """Stream the object once and return its sha256 and size."""
    digest = hashlib.sha256()
    size = 0
    with store.open(key) as stream:
        while chunk := stream.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return ArtifactPin(sha256=digest.hexdigest(), size=size)


class VerifiedReader(io.RawIOBase):
    """A binary stream over a stored object that hashes what is read and compares it with
    the pin: `open_verified` checks the size first, `read` refuses as soon as more bytes than
    pinned arrive, `finish` reads what the consumer left (an archive's padding) and compares
    the digest. Only content that passed `finish` may be used."""

    def __init__(self, raw: BinaryIO, pin: ArtifactPin, describe: str) -> None:
        super().__init__()
        self._raw = raw
        self._pin = pin
        self._describe = describe  # "model artifact X changed since package P was registered"
        self._digest = hashlib.sha256()
        self._size = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Buffer) -> int:
        view = memoryview(buffer).cast("B")
        chunk = self._raw.read(len(view))
        self._size += len(chunk)
        if self._size > self._pin.size:
            raise self._changed(f"more than {self._pin.size} bytes, the pinned size")
        self._digest.update(chunk)
        view[: len(chunk)] = chunk
        return len(chunk)

    def finish(self) -> None:
        """Read the rest of the object and raise ArtifactChanged unless it is the pinned
        content, byte for byte."""
        while self.read(_CHUNK):
            pass
        if self._size != self._pin.size:
            raise self._changed(f"size {self._size} bytes, expected {self._pin.size}")
        actual = self._digest.hexdigest()
        if actual != self._pin.sha256:
            raise self._changed(f"sha256 {actual}, expected {self._pin.sha256}")

    def close(self) -> None:
        if not self.closed:
            self._raw.close()
        super().close()

    def _changed(self, detail: str) -> ArtifactChanged:
        return ArtifactChanged(f"{self._describe} ({detail})", field="model")


def open_verified(
    store: ArtifactStore, key: str, pin: ArtifactPin, *, owner: str, what: str = "model artifact"
) -> VerifiedReader:
    """Open `key` for a read that `finish` checks against `pin`. A stored size that differs
    is refused at once, before anything is downloaded. `owner` names what pinned it
    ("package churn/3")."""
    describe = f"{what} {artifact_label(store, key)} changed since {owner} was registered"
    stored = store.stat(key).size
    if stored != pin.size:
        raise ArtifactChanged(
            f"{describe} (size {stored} bytes, expected {pin.size})", field="model"
        )
    return VerifiedReader(store.open(key), pin, describe)
