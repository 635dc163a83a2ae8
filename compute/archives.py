"""Reading and unpacking users' tar archives (source archives, model archives) safely.

Every archive the platform unpacks goes through `extract`, and every look inside one at
submission through `scan`. Both stream (nothing is held in memory, nothing is read twice) and
refuse, with a message naming the limit and its setting and never a path on the host:

- more members than ARCHIVE_MAX_FILES;
- more than ARCHIVE_MAX_EXPANDED_MB of content once unpacked;
- content more than ARCHIVE_MAX_RATIO times the archive's own size (past RATIO_FLOOR, so
  that a tiny archive of a compressible file is never refused for its ratio);
- absolute names, `..`, members below a symbolic link of the archive, links pointing out of
  the archive's folder, devices and fifos (then tarfile's "data" filter applies as well).

Sizes are the ones each member's header declares, checked before its content is read or
written: a bomb is refused at the header that takes it over a limit, having written at most
the limit.
"""

from __future__ import annotations

import posixpath
import tarfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from django.conf import settings

from studio.errors import StudioloError, ValidationError

MIB = 1024 * 1024
# Below this much content an archive's ratio is not looked at: a 2 KB archive holding 900 KB
# of zeros is harmless, and refusing it would only puzzle its author.
RATIO_FLOOR = 1 * MIB
_READ_ERRORS = (tarfile.TarError, EOFError, zlib.error, UnicodeDecodeError)


class ArchiveRefused(ValidationError):
    """The archive passes a limit, or holds a member that must not be unpacked."""

    code = "archive_refused"


@dataclass(frozen=True)
class ArchiveLimits:
    max_bytes: int
    max_files: int
    max_ratio: int

    @classmethod
    def from_settings(cls) -> ArchiveLimits:
        return cls(
            max_bytes=int(settings.ARCHIVE_MAX_EXPANDED_MB) * MIB,
            max_files=int(settings.ARCHIVE_MAX_FILES),
            max_ratio=int(settings.ARCHIVE_MAX_RATIO),
        )


@dataclass(frozen=True)
class ScanResult:
    found: bool  # the member asked for is in the archive
    complete: bool  # every header was read (False: the scan stopped at its budget)


class _Guard:
    """Counts an archive's members and declared bytes against the limits, and refuses the
    names and links that must not be unpacked."""

    def __init__(self, limits: ArchiveLimits, archive_size: int, label: str, field: str) -> None:
        self.limits = limits
        self.archive_size = max(1, archive_size)
        self.label = label
        self.field = field
        self.members = 0
        self.expanded = 0
        self._symlinks: set[str] = set()

    def admit(self, member: tarfile.TarInfo) -> str:
        """Count `member` and return its normalised name, or raise ArchiveRefused."""
        limits = self.limits
        self.members += 1
        if self.members > limits.max_files:
            self._refuse(f"it holds more than {limits.max_files} files (ARCHIVE_MAX_FILES)")
        self.expanded += max(0, member.size)
        if self.expanded > limits.max_bytes:
            self._refuse(
                f"it expands to more than {limits.max_bytes // MIB} MiB (ARCHIVE_MAX_EXPANDED_MB)"
            )
        if self.expanded > max(RATIO_FLOOR, limits.max_ratio * self.archive_size):
            self._refuse(
                f"it expands to more than {limits.max_ratio} times its own size of "
                f"{_size(self.archive_size)} (ARCHIVE_MAX_RATIO)"
            )
        return self._check_name(member)

    def _check_name(self, member: tarfile.TarInfo) -> str:
        raw = member.name
        name = posixpath.normpath(raw.removeprefix("./")) if raw not in ("", ".", "./") else "."
        if raw.startswith("/") or name == ".." or name.startswith("../") or "\\" in raw:
            self._refuse_member(raw, "its name leaves the archive's folder")
        if not (member.isreg() or member.isdir() or member.issym() or member.islnk()):
            self._refuse_member(raw, "only files, folders and links are unpacked")
        parts = name.split("/")
        for depth in range(1, len(parts)):
            if "/".join(parts[:depth]) in self._symlinks:
                self._refuse_member(raw, "its folder is a symbolic link of the archive")
        if member.issym() or member.islnk():
            base = posixpath.dirname(name) if member.issym() else ""
            target = posixpath.normpath(posixpath.join(base, member.linkname))
            if member.linkname.startswith("/") or target == ".." or target.startswith("../"):
                self._refuse_member(raw, "its link points out of the archive's folder")
            if member.issym():
                self._symlinks.add(name)
        return name

    def _refuse(self, why: str) -> None:
        raise ArchiveRefused(f"{self.label} is refused: {why}", field=self.field)

    def _refuse_member(self, name: str, why: str) -> None:
        self._refuse(f"member {name[:200]!r}: {why}")


def extract(
    stream: IO[bytes],
    destination: Path,
    *,
    archive_size: int,
    label: str,
    field: str,
    limits: ArchiveLimits | None = None,
) -> int:
    """Unpack the tar (gzip, bzip2, xz or plain) read from `stream` into `destination`, within
    the limits. Returns the number of members. `label` names the archive in errors ("source
    archive teams/a/src.tar.gz"); `archive_size` is its size in bytes, for the ratio."""
    guard = _Guard(limits or ArchiveLimits.from_settings(), archive_size, label, field)

    def admitted(archive: tarfile.TarFile) -> Iterator[tarfile.TarInfo]:
        for member in archive:
            guard.admit(member)
            yield member

    def data_filter(member: tarfile.TarInfo, path: str) -> tarfile.TarInfo | None:
        # Our own checks came first; tarfile's filter also drops modes and owners. Its errors
        # quote the destination on the host: only the member's name is passed on.
        try:
            return tarfile.data_filter(member, path)
        except tarfile.FilterError as exc:
            raise ArchiveRefused(
                f"{label} is refused: member {member.name[:200]!r}: {type(exc).__name__}",
                field=field,
            ) from None

    try:
        with tarfile.open(fileobj=stream, mode="r|*") as archive:
            # Every member went through the guard and the data filter first.
            archive.extractall(  # noqa: S202
                destination, members=admitted(archive), filter=data_filter
            )
    except _READ_ERRORS as exc:
        raise ArchiveRefused(f"{label} is not a readable tar archive ({exc})", field=field) from exc
    except OSError as exc:  # the host's disk, not the archive: no file name in the message
        raise StudioloError(
            f"Platform error: could not unpack the {label}: {exc.strerror or type(exc).__name__}"
        ) from exc
    return guard.members


def scan(
    stream: IO[bytes],
    *,
    archive_size: int,
    label: str,
    field: str,
    wanted: str = "",
    budget_bytes: int,
    limits: ArchiveLimits | None = None,
) -> ScanResult:
    """Read the archive's headers within the limits, without unpacking anything, and tell
    whether `wanted` (a member name) is among them. Stops once members declaring
    `budget_bytes` of content have gone by: reading past a member means decompressing it, and
    the budget bounds that work in a web request (the worker applies the limits to the rest
    when it unpacks)."""
    guard = _Guard(limits or ArchiveLimits.from_settings(), archive_size, label, field)
    target = posixpath.normpath(wanted) if wanted else ""
    found = False
    try:
        with tarfile.open(fileobj=stream, mode="r|*") as archive:
            for member in archive:
                found = guard.admit(member) == target or found
                if guard.expanded > budget_bytes:
                    return ScanResult(found=found, complete=False)
    except _READ_ERRORS as exc:
        raise ArchiveRefused(f"{label} is not a readable tar archive ({exc})", field=field) from exc
    return ScanResult(found=found, complete=True)


def _size(size: int) -> str:
    if size >= MIB:
        return f"{size / MIB:.1f} MiB"
    return f"{size / 1024:.1f} KiB" if size >= 1024 else f"{size} bytes"
