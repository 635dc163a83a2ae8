"""An artifact store in a local folder (the embedded default, laptops, tests).

Containment: every path is resolved (symlinks included) and must stay inside the resolved
root, so neither a crafted key nor a symlink planted in the folder can make the store read
or write elsewhere. A symlink swapped in between the check and the open could still win;
the folder is assumed to be writable only by Studiolo itself.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat as stat_module
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, NoReturn

from studio.artifacts.base import ArtifactStore, ObjectInfo
from studio.artifacts.errors import (
    ArtifactNotFound,
    ArtifactStoreUnavailable,
    InvalidArtifactKey,
)
from studio.artifacts.keys import is_canonical_key, validate_key, validate_prefix

if TYPE_CHECKING:
    from collections.abc import Iterator

# Writes go to a hidden sibling with this prefix and are renamed into place; listings skip
# such names and keys may not end in one, so a half-written object is never visible.
PARTIAL_PREFIX = ".studiolo-partial-"
_COPY_CHUNK_BYTES = 1024 * 1024
# A concurrent delete prunes empty folders and may remove the one a put just created.
_PUT_ATTEMPTS = 3


class LocalArtifactStore(ArtifactStore):
    """Objects as regular files under `root`; the key is the path relative to it.

    Unlike S3, a folder cannot hold both an object `a` and objects under `a/`; a put that
    would need that raises InvalidArtifactKey. `content_type` is not kept.
    """

    def __init__(self, root: Path | str) -> None:
        # Resolved once so that every containment check compares real paths; a root that is
        # itself a symlink (say /srv/artifacts -> /mnt/disk) is fine.
        self.root = Path(root).expanduser().resolve()

    # -- reads -----------------------------------------------------------------------------

    def get(self, key: str) -> bytes:
        key, path = self._existing_path(key)
        with self._translate_read_errors(key):
            return path.read_bytes()

    def open(self, key: str) -> BinaryIO:
        key, path = self._existing_path(key)
        with self._translate_read_errors(key):
            return path.open("rb")

    def exists(self, key: str) -> bool:
        _, path = self._existing_path(key)
        return path.is_file()

    def stat(self, key: str) -> ObjectInfo:
        key, path = self._existing_path(key)
        with self._translate_read_errors(key):
            st = path.stat()
        if not stat_module.S_ISREG(st.st_mode):
            self._not_found(key)
        return ObjectInfo(key=key, size=st.st_size, last_modified=_mtime(st))

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        # Validation happens here, eagerly; only the walk itself is lazy.
        prefix = validate_prefix(prefix)
        folder = self._contained(self.root / prefix, prefix) if prefix else self.root
        return self._walk(folder, prefix)

    # -- writes ----------------------------------------------------------------------------

    def put(self, key: str, data: bytes | BinaryIO, content_type: str | None = None) -> ObjectInfo:
        key, parent, name = self._parent_and_name(key)
        target = parent / name
        fd, partial = self._create_partial(key, parent)
        # Errors from reading `data` are the caller's (a client that went away), not the
        # store's: they propagate unchanged, while write errors become domain errors.
        reading = False
        try:
            with os.fdopen(fd, "wb") as out:
                if isinstance(data, bytes | bytearray | memoryview):
                    out.write(data)
                else:
                    while True:
                        reading = True
                        chunk = data.read(_COPY_CHUNK_BYTES)
                        reading = False
                        if not chunk:
                            break
                        out.write(chunk)
                out.flush()
                # Without fsync a crash shortly after the rename can leave an empty file.
                os.fsync(out.fileno())
                # Taken from the open file: a stat after the rename could race a delete.
                st = os.fstat(out.fileno())
            os.replace(partial, target)
        except BaseException as error:
            with contextlib.suppress(OSError):
                partial.unlink()
            if reading or not isinstance(error, OSError):
                raise
            if isinstance(error, IsADirectoryError):
                raise InvalidArtifactKey(
                    f"cannot store {key!r}: it is a folder in {self.describe()}"
                ) from None
            self._unavailable(error)
        _fsync_folder(parent)
        return ObjectInfo(key=key, size=st.st_size, last_modified=_mtime(st))

    def delete(self, key: str) -> None:
        key, parent, name = self._parent_and_name(key)
        # The leaf is not resolved: deleting a symlink removes the link, never its target.
        target = parent / name
        if target.is_dir() and not target.is_symlink():
            return  # A folder is not an object; there is no object `key` to delete.
        try:
            target.unlink()
        except (FileNotFoundError, NotADirectoryError):
            return
        except OSError as error:
            self._unavailable(error)
        self._prune_empty_folders(parent)

    def delete_prefix(self, prefix: str) -> int:
        prefix = validate_prefix(prefix, allow_empty=False)
        folder = self._contained(self.root / prefix, prefix)
        if not folder.is_dir():
            return 0

        def fail(error: OSError) -> NoReturn:
            self._unavailable(error)

        deleted = 0
        # Bottom-up so folders are empty by the time they are removed. Everything goes,
        # including names the store would not list, except partial files of writes still
        # in flight (their folder then stays).
        for dirpath, dirnames, filenames in os.walk(folder, topdown=False, onerror=fail):
            for name in filenames:
                if not name.startswith(PARTIAL_PREFIX):
                    deleted += self._unlink_counting(Path(dirpath, name))
            for name in dirnames:
                path = Path(dirpath, name)
                if path.is_symlink():  # os.walk reports links to folders as folders.
                    deleted += self._unlink_counting(path)
                else:
                    with contextlib.suppress(OSError):
                        path.rmdir()
        with contextlib.suppress(OSError):
            folder.rmdir()
        self._prune_empty_folders(folder.parent)
        return deleted

    # -- addressing ------------------------------------------------------------------------

    def uri(self, key: str) -> str:
        return f"{self._uri_base()}{validate_key(key)}"

    def key_from_uri(self, uri: str) -> str:
        base = self._uri_base()
        if not isinstance(uri, str) or not uri.startswith(base):
            raise InvalidArtifactKey(f"{uri!r} is not inside {self.describe()}", field="uri")
        return validate_key(uri[len(base) :])

    def check(self) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            # Named like a partial write so that a crash here leaves nothing listable.
            fd, probe = tempfile.mkstemp(dir=self.root, prefix=PARTIAL_PREFIX)
            os.close(fd)
            os.unlink(probe)
        except OSError as error:
            raise ArtifactStoreUnavailable(
                f"{self.describe()} is not writable: {error.strerror or error}"
            ) from None

    def describe(self) -> str:
        return f"local:{self.root}"

    # -- helpers ---------------------------------------------------------------------------

    def _uri_base(self) -> str:
        # URIs are not percent-encoded; parse them with key_from_uri, not urllib.
        return f"file://{str(self.root).rstrip('/')}/"

    def _contained(self, path: Path, key: str) -> Path:
        """Resolve `path` (following symlinks) and insist that it is strictly inside root."""
        try:
            resolved = path.resolve()
        except (OSError, RuntimeError):  # RuntimeError: symlink loop on Python 3.12.
            raise InvalidArtifactKey(f"artifact key {key!r} cannot be resolved") from None
        if resolved == self.root or not resolved.is_relative_to(self.root):
            raise InvalidArtifactKey(f"artifact key {key!r} resolves outside the store root")
        return resolved

    def _existing_path(self, key: str) -> tuple[str, Path]:
        key = self._validate(key)
        return key, self._contained(self.root / key, key)

    def _parent_and_name(self, key: str) -> tuple[str, Path, str]:
        """For writes: the resolved folder (inside root or root itself) and the leaf name."""
        key = self._validate(key)
        parent, _, name = key.rpartition("/")
        folder = self._contained(self.root / parent, key) if parent else self.root
        return key, folder, name

    def _create_partial(self, key: str, parent: Path) -> tuple[int, Path]:
        """Create the folder and an empty hidden file in it to write the new content to."""
        for _ in range(_PUT_ATTEMPTS):
            partial = parent / f"{PARTIAL_PREFIX}{secrets.token_hex(8)}"
            try:
                parent.mkdir(parents=True, exist_ok=True)
                # os.open rather than mkstemp: mkstemp forces mode 0600, and objects should
                # get the process umask like any other file the server writes.
                flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
                return os.open(partial, flags, 0o666), partial
            except FileNotFoundError:
                continue  # A concurrent delete pruned the folder we just made; again.
            except (FileExistsError, NotADirectoryError) as error:
                if not self.root.is_dir():
                    self._unavailable(error)  # A misconfigured root, not a bad key.
                raise InvalidArtifactKey(
                    f"cannot store {key!r}: one of its folders is an object in {self.describe()}"
                ) from None
            except OSError as error:
                self._unavailable(error)
        raise ArtifactStoreUnavailable(f"{self.describe()}: the folder of {key!r} keeps vanishing")

    @staticmethod
    def _validate(key: str) -> str:
        key = validate_key(key)
        if key.rpartition("/")[2].startswith(PARTIAL_PREFIX):
            raise InvalidArtifactKey(
                f"artifact key {key!r} uses the reserved name prefix {PARTIAL_PREFIX!r}"
            )
        return key

    def _walk(self, folder: Path, key_prefix: str) -> Iterator[ObjectInfo]:
        try:
            # Sorting folders as "name/" makes a depth-first walk yield keys in plain string
            # order, the order S3 lists in: "a.txt" < "a/b" < "a0".
            with os.scandir(folder) as scan:
                entries = sorted(scan, key=_walk_order)
        except FileNotFoundError:
            return  # Nothing stored there (yet).
        except NotADirectoryError as error:
            if folder == self.root:
                self._unavailable(error)  # A misconfigured root is not an empty store.
            return  # The prefix names an object, not a folder.
        except OSError as error:
            self._unavailable(error)
        for entry in entries:
            key = f"{key_prefix}/{entry.name}" if key_prefix else entry.name
            # The store never creates symlinks; following foreign ones could loop or escape.
            if (
                entry.is_symlink()
                or entry.name.startswith(PARTIAL_PREFIX)
                or not is_canonical_key(key)
            ):
                continue
            if entry.is_dir(follow_symlinks=False):
                yield from self._walk(Path(entry.path), key)
            elif entry.is_file(follow_symlinks=False):
                try:
                    st = entry.stat(follow_symlinks=False)
                except FileNotFoundError:  # Deleted while we walked.
                    continue
                except OSError as error:
                    self._unavailable(error)
                yield ObjectInfo(key=key, size=st.st_size, last_modified=_mtime(st))

    def _unlink_counting(self, path: Path) -> int:
        try:
            path.unlink()
        except FileNotFoundError:  # A concurrent delete won the race.
            return 0
        except OSError as error:
            self._unavailable(error)
        return 1

    def _prune_empty_folders(self, folder: Path) -> None:
        # Empty folders are invisible to list() but would pile up forever; S3 has none.
        while folder != self.root and folder.is_relative_to(self.root):
            try:
                folder.rmdir()
            except OSError:  # Not empty (or already gone): stop climbing.
                return
            folder = folder.parent

    @contextlib.contextmanager
    def _translate_read_errors(self, key: str) -> Iterator[None]:
        try:
            yield
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            self._not_found(key)
        except OSError as error:
            self._unavailable(error)

    def _not_found(self, key: str) -> NoReturn:
        raise ArtifactNotFound(f"no artifact {key!r} in {self.describe()}")

    def _unavailable(self, error: OSError) -> NoReturn:
        reason = error.strerror or str(error)
        where = f" ({error.filename})" if error.filename else ""
        raise ArtifactStoreUnavailable(f"{self.describe()}: {reason}{where}") from error


def _walk_order(entry: os.DirEntry[str]) -> str:
    return entry.name + "/" if entry.is_dir(follow_symlinks=False) else entry.name


def _mtime(st: os.stat_result) -> datetime:
    return datetime.fromtimestamp(st.st_mtime, tz=UTC)


def _fsync_folder(folder: Path) -> None:
    # Makes the rename itself durable; best effort, some filesystems refuse it.
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
