"""A run's artifacts, in the artifact store below the run's folder.

Paths are relative to the run's artifact root (`model/model.pkl`); the store's key rules
apply to them (no `..`, no absolute paths, no empty segments).
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from django.db import transaction

from experiments.models import Run
from experiments.services.common import Actor, require_tracking
from experiments.services.logging import check_writable
from experiments.services.runs import run_artifact_prefix
from studio.artifacts import ObjectInfo, get_store, validate_key, validate_prefix
from studio.artifacts.errors import InvalidArtifactKey
from studio.artifacts.protection import protected_key_reason, require_user_writable
from studio.audit.services import audit_record


@dataclass(frozen=True)
class ArtifactEntry:
    """One entry of a folder listing: a file (with its size) or a sub-folder."""

    path: str  # relative to the run's artifact root
    is_dir: bool
    size: int | None


def _key(run: Run, path: str) -> str:
    try:
        relative = validate_key(path)
    except InvalidArtifactKey as error:
        raise InvalidArtifactKey(
            error.message.replace("artifact key", "path"), field="path"
        ) from None
    return f"{run_artifact_prefix(run)}/{relative}"


def run_artifact_put(*, run: Run, actor: Actor, path: str, data: BinaryIO | bytes) -> ObjectInfo:
    require_tracking(actor=actor, experiment=run.experiment)
    check_writable(run, recording=True)
    key = _key(run, path)
    require_user_writable(key)  # e.g. an archive a model package was registered from
    # Slow I/O outside any transaction; the audit event follows the write.
    info = get_store().put(key, data)
    with transaction.atomic():
        audit_record(
            actor=actor,
            action="run.artifact_uploaded",
            target=run,
            object_id=run.run_uuid,
            team=run.experiment.team,
            details={"path": path, "size": info.size},
        )
    return info


def run_artifact_open(*, run: Run, path: str) -> tuple[BinaryIO, ObjectInfo]:
    """The artifact's content as a stream (the caller closes it) and its size. Reading needs
    only membership, which the selector that found the run has checked."""
    key = _key(run, path)
    store = get_store()
    info = store.stat(key)
    return store.open(key), info


def run_artifact_list(*, run: Run, path: str = "") -> list[ArtifactEntry]:
    """The direct children of the folder `path` ("" for the root), folders first by name."""
    root = run_artifact_prefix(run)
    folder = root if not path.strip("/") else _key(run, path.strip("/"))
    validate_prefix(folder)
    relative_folder = folder[len(root) :].lstrip("/")
    files: list[ArtifactEntry] = []
    folders: dict[str, ArtifactEntry] = {}
    for info in get_store().list(folder):
        rest = info.key[len(folder) :].lstrip("/")
        head, _, tail = rest.partition("/")
        child = f"{relative_folder}/{head}" if relative_folder else head
        if tail:
            folders.setdefault(child, ArtifactEntry(child, True, None))
        else:
            files.append(ArtifactEntry(child, False, info.size))
    return sorted(folders.values(), key=lambda e: e.path) + sorted(files, key=lambda e: e.path)


def run_artifacts_collect(*, run: Run, folder: Path) -> tuple[int, int]:
    """Upload every regular file below `folder` (a job's /opt/ml/output/artifacts, filled by
    the Studiolo client in the job) into the run's artifacts, at the same relative paths.
    Returns (files, bytes). The platform's path: no permission check (the job's runner
    calls it) and no status check (the job's run ends right after), one audit event.

    The folder was written by the job's container: symbolic links are skipped and files are
    opened without following links, so a job cannot make the worker upload a host file; nor
    can it overwrite an archive a model package pinned (studio.artifacts.protection)."""
    if not folder.is_dir():
        return 0, 0
    root = run_artifact_prefix(run)
    store = get_store()
    files = size = 0
    skipped: list[str] = []
    for directory, subdirectories, names in os.walk(folder):  # never follows links
        subdirectories.sort()
        for name in sorted(names):
            path = Path(directory) / name
            relative = path.relative_to(folder).as_posix()
            try:
                key = f"{root}/{validate_key(relative)}"
            except InvalidArtifactKey:
                skipped.append(relative)  # a name the store refuses
                continue
            if protected_key_reason(key):
                skipped.append(relative)  # a package's pinned archive: it stays as it is
                continue
            try:
                # O_NONBLOCK: opening a fifo the job left there must not wait for a writer.
                fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
            except OSError:
                skipped.append(relative)  # a link
                continue
            with os.fdopen(fd, "rb") as stream:
                if not stat.S_ISREG(os.fstat(stream.fileno()).st_mode):
                    skipped.append(relative)  # a fifo or a device: nothing to upload
                    continue
                size += store.put(key, stream).size
            files += 1
    if files or skipped:
        with transaction.atomic():
            audit_record(
                actor=None,
                action="run.artifacts_collected",
                target=run,
                object_id=run.run_uuid,
                team=run.experiment.team,
                details={"files": files, "bytes": size, "skipped": skipped[:20]},
            )
    return files, size
