"""Keeping a folder and a prefix of the artifact store alike, while a container writes into
the folder: SageMaker's checkpoint sync (CheckpointConfig), and the machinery processing's
`Continuous` outputs reuse.

Pure file and store work, no database: the runner decides when and says where.

- `folder_restore` copies everything under a prefix into a folder (the files a new job finds
  in place at start), giving each file the object's write time, so the sync that follows
  knows them for copies and does not upload them back.
- `FolderSync` uploads, from its own thread every `interval` seconds, the files under the
  folder that are new or changed (size, mtime) and complete, to `<prefix>/<relative path>`;
  `stop()` makes one last full pass once the writer has exited.

"Complete" without help from the writer: a file is uploaded once a scan finds it with the
same size and mtime as the scan before (a file being written changes between two scans), so
a checkpoint written slowly in place is not uploaded half-written. A file that replaced the
one the previous scan saw (another inode at the same path: a write-then-rename, what a
careful trainer does with `os.replace`) was complete when it appeared and is uploaded at
once, so a checkpoint rewritten that way faster than the interval is still synced every
pass. A file that changes while it is read is not counted as uploaded (the next pass takes
it again) and, if nothing of it was stored before, its torn copy is removed. The final
pass uploads every change without waiting: the writer has exited.

Deletion follows the SageMaker Developer Guide ("Checkpoints in Amazon SageMaker AI": "If a
checkpoint is deleted in the SageMaker AI container, it will also be deleted in the S3
folder"): with `mirror_deletes`, a file this sync uploaded or found in place that two scans
(or the final pass) find gone from the folder is deleted from the store; the folder gone as
a whole deletes nothing. Objects the sync never saw in its folder (another
instance's, written to the same prefix) are never touched.

The folder is written by the job's container, which is not trusted: files are read without
following symbolic links (no component of the path may be one), so a link cannot make the
worker upload a file of its host.
"""

from __future__ import annotations

import logging
import os
import stat
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from studio.artifacts import ArtifactStore
from studio.artifacts.errors import ArtifactStoreError

log = logging.getLogger(__name__)

CHUNK = 1024 * 1024
# How much later than the stored object a local file's mtime may be and still count as
# that object's copy when a sync starts (clock granularity of the stores' write times).
SAME_WRITE_SLACK_NS = 1_000_000_000

Signature = tuple[int, int, int]  # (size, mtime_ns, inode)


@dataclass(frozen=True)
class SyncPass:
    """What one pass did: files uploaded and their bytes, objects deleted."""

    files: int = 0
    bytes: int = 0
    deleted: int = 0

    def __bool__(self) -> bool:
        return bool(self.files or self.deleted)


def folder_restore(store: ArtifactStore, prefix_key: str, folder: Path) -> tuple[int, int]:
    """Download every object under `prefix_key` into `folder` (its relative key as the
    path). Returns (files, bytes). Nothing under the prefix is not an error: a job's first
    run starts with an empty folder."""
    prefix = prefix_key.rstrip("/") + "/"
    folder.mkdir(parents=True, exist_ok=True)
    files = size = 0
    for info in store.list(prefix):
        relative = PurePosixPath(info.key[len(prefix) :])
        if relative.is_absolute() or ".." in relative.parts:  # keys are checked; be sure
            raise ArtifactStoreError(f"refusing to restore {info.key!r} outside {folder}")
        target = folder.joinpath(*relative.parts)
        target.parent.mkdir(parents=True, exist_ok=True)
        # Written under a temporary name and renamed: a half-copied file is never in place.
        handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=".restore-")
        try:
            with store.open(info.key) as source, os.fdopen(handle, "wb") as sink:
                while chunk := source.read(CHUNK):
                    sink.write(chunk)
                    size += len(chunk)
            written = int(info.last_modified.timestamp() * 1_000_000_000)
            os.utime(temporary, ns=(written, written))
            os.replace(temporary, target)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        files += 1
    return files, size


class FolderSync:
    """Uploads a folder's new and changed files to `prefix_key` every `interval` seconds,
    from its own thread, until `stop()` (which makes a last full pass).

    `on_pass` is called with every pass that uploaded or deleted something; `on_error` with
    the store's error when a periodic pass fails (the next pass tries again). The final
    pass raises it instead: the caller decides what a lost last upload means.
    """

    def __init__(
        self,
        store: ArtifactStore,
        prefix_key: str,
        folder: Path,
        *,
        interval: float,
        mirror_deletes: bool = True,
        on_pass: Callable[[SyncPass], None] | None = None,
        on_error: Callable[[ArtifactStoreError], None] | None = None,
        name: str = "folder-sync",
    ) -> None:
        self.store = store
        self.prefix = prefix_key.rstrip("/") + "/"
        self.folder = folder
        self.interval = interval
        self.mirror_deletes = mirror_deletes
        self.on_pass = on_pass
        self.on_error = on_error
        self.name = name
        self.totals = SyncPass()
        self._uploaded: dict[str, Signature] = {}  # relative path -> what is in the store
        self._last_scan: dict[str, Signature] = {}
        self._missing: set[str] = set()  # uploaded, and missing from the last scan
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()  # one pass at a time (the thread's, or stop's)

    def start(self) -> None:
        """Note what is in place already (restored files are not uploaded back), then sync
        from a thread."""
        self._adopt_stored_copies()
        self._thread = threading.Thread(target=self._loop, name=self.name, daemon=True)
        self._thread.start()

    def stop(self) -> SyncPass:
        """Stop the thread, then upload every change left (the writer has exited). Returns
        the totals of the whole sync."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join()
        self.sync_once(final=True)
        return self.totals

    def sync_once(self, *, final: bool = False) -> SyncPass:
        """One pass: upload what is new or changed (and, unless `final`, unchanged since the
        previous scan), delete what vanished (with `mirror_deletes`)."""
        with self._lock:
            if not self.folder.is_dir():
                # The whole folder gone (the job's tree cleaned up, say) is not the job
                # deleting its files: mirroring that would empty the prefix.
                return SyncPass()
            scan = dict(self._scan())
            files = size = deleted = 0
            for relative, signature in sorted(scan.items()):
                if self._uploaded.get(relative) == signature:
                    continue
                previous = self._last_scan.get(relative)
                replaced = previous is not None and previous[2] != signature[2]
                if not final and previous != signature and not replaced:
                    continue  # new or changing in place: wait for it to settle
                sent = self._upload(relative, signature)
                if sent is not None:
                    files, size = files + 1, size + sent
            if self.mirror_deletes:
                # Deleted once two scans miss it (the final pass: at once): a folder being
                # removed whole (a clean-up) is seen as the folder gone by the next scan.
                missing = set(self._uploaded) - set(scan)
                for relative in sorted(missing if final else missing & self._missing):
                    self.store.delete(self.prefix + relative)
                    del self._uploaded[relative]
                    deleted += 1
                self._missing = missing & set(self._uploaded)
            self._last_scan = scan
            done = SyncPass(files=files, bytes=size, deleted=deleted)
            self.totals = SyncPass(
                files=self.totals.files + files,
                bytes=self.totals.bytes + size,
                deleted=self.totals.deleted + deleted,
            )
        if done and self.on_pass is not None:
            self.on_pass(done)
        return done

    # --- inside -------------------------------------------------------------------------

    def _loop(self) -> None:
        while not self._stopping.wait(self.interval):
            try:
                self.sync_once()
            except ArtifactStoreError as exc:
                if self.on_error is not None:
                    self.on_error(exc)
                else:
                    log.warning("%s: %s", self.name, exc)

    def _adopt_stored_copies(self) -> None:
        stored = {info.key[len(self.prefix) :]: info for info in self.store.list(self.prefix)}
        for relative, signature in self._scan():
            info = stored.get(relative)
            size, mtime_ns, _ = signature
            if info is None or info.size != size:
                continue
            if mtime_ns <= info.last_modified.timestamp() * 1_000_000_000 + SAME_WRITE_SLACK_NS:
                self._uploaded[relative] = signature

    def _scan(self) -> Iterator[tuple[str, Signature]]:
        """Every regular file below the folder (links are not followed), by relative path."""
        for top, dirs, names in os.walk(self.folder):
            dirs.sort()
            base = Path(top).relative_to(self.folder)
            for name in names:
                try:
                    info = os.lstat(os.path.join(top, name))
                except FileNotFoundError:
                    continue
                if stat.S_ISREG(info.st_mode):
                    yield (base / name).as_posix(), _signature(info)

    def _upload(self, relative: str, signature: Signature) -> int | None:
        """Stream one file to the store; None if it vanished or changed while read (the next
        pass takes it again)."""
        try:
            handle = _open_beneath(self.folder, relative)
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as exc:  # a link put where a folder or the file was: not followed
            log.warning("%s: not uploading %s: %s", self.name, relative, exc)
            return None
        try:
            before = os.fstat(handle)
            if not stat.S_ISREG(before.st_mode) or _signature(before) != signature:
                return None
            # The store may close the stream it is given (boto3 does): give it a copy.
            with os.fdopen(os.dup(handle), "rb") as stream:
                self.store.put(self.prefix + relative, stream)
            after = os.fstat(handle)
        finally:
            os.close(handle)
        if _signature(after) != signature:
            # Written to while read: what was stored may be torn. The next pass takes it
            # again; until then, a torn copy of a file never stored whole is not kept.
            if relative not in self._uploaded:
                self.store.delete(self.prefix + relative)
            return None
        self._uploaded[relative] = signature
        return signature[0]


def _signature(info: os.stat_result) -> Signature:
    return info.st_size, info.st_mtime_ns, info.st_ino


def _open_beneath(root: Path, relative: str) -> int:
    """Open `root/relative` for reading with no symbolic link anywhere below `root`."""
    parts = PurePosixPath(relative).parts
    directory = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for part in parts[:-1]:
            inner = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=directory)
            os.close(directory)
            directory = inner
        return os.open(parts[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=directory)
    finally:
        os.close(directory)
