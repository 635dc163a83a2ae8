"""Folders a worker stages on its host, and their removal.

- Models: a serving container (an endpoint instance, a batch transform) reads its model from
  `JOBS_WORK_DIR/serving/<digest of the artifact URI>/model/`, downloaded and unpacked once per
  artifact and shared by every container that serves it. The archive is checked against the
  package's pin while it downloads (`studio.artifacts.integrity`) and unpacked within the
  archive limits (`jobs.archives`); the folder appears complete and checked, or not at all.
- Jobs: each job's `/opt/ml` lives in `JOBS_WORK_DIR/job-<id>/` (`jobs.runner.work_dir`); its
  runner removes it when the job ends.

`staging_prune` (run by the jobs reconciliation) removes what nothing needs any more: a
staged model no live consumer serves (the apps that serve models register what they still
need, `staged_models_in_use_register`), and the folder of a job that ended or was deleted
without its runner cleaning up. Staging and removing one model take the same lock, and a
consumer's row exists before it stages, so a removal never pulls a model from under a
container that is starting.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.utils import timezone

from jobs.archives import extract
from jobs.models import ACTIVE_STATUSES, Job
from jobs.serving import ServingSource
from studio.artifacts import ArtifactNotFound, get_store
from studio.artifacts.integrity import artifact_label, open_verified
from studio.errors import ValidationError

log = logging.getLogger(__name__)

# Artifact URIs whose staged model a consumer still needs.
InUseProvider = Callable[[], Iterable[str]]
# Inside a staged folder, next to `model/`: the sha256 the content was checked against.
CHECKED_MARKER = ".studiolo-sha256"
JOB_FOLDER = re.compile(r"job-(\d+)")  # jobs.runner.work_dir
STAGED_FOLDER = re.compile(r"[0-9a-f]{24}")
SCRATCH_FOLDER = re.compile(r"\.([0-9a-f]{24})-.+")
READ_BUFFER = 1024 * 1024
# A job folder outlives its job this long: its runner may still be cleaning up.
ENDED_GRACE = timedelta(minutes=1)

_in_use: dict[str, InUseProvider] = {}


def staged_models_in_use_register(name: str, provider: InUseProvider) -> None:
    """Register (or replace) what one kind of consumer still serves."""
    _in_use[name] = provider


def serving_folder() -> Path:
    return Path(settings.JOBS_WORK_DIR) / "serving"


def staged_model_root(artifact_uri: str) -> Path:
    return serving_folder() / hashlib.sha256(artifact_uri.encode()).hexdigest()[:24]


def stage_model(source: ServingSource) -> Path:
    """Download, check and unpack the model archive once; returns a folder holding `model/`.

    Safe against concurrent callers (several instances starting at once, in one worker or in
    several): a file lock serialises them. A folder staged from other content than the pin
    (staged before the package was pinned, or for another package on the same URI) is staged
    again."""
    if source.pinned_by and source.pin is None:
        raise ValidationError(
            f"model: {source.pinned_by} has no pinned artifact checksum (it was registered "
            "before packages pinned their artifact, and its artifact was missing when the "
            "studio was upgraded): register the model again",
            field="model",
        )
    root = staged_model_root(source.artifact_uri)
    root.parent.mkdir(parents=True, exist_ok=True)
    with _locked(root):
        staged = (root / "model").is_dir()
        if staged and (source.pin is None or _checked_against(root) == source.pin.sha256):
            return root
        _stage(source, root)
    return root


def _stage(source: ServingSource, root: Path) -> None:
    store = get_store()
    key = store.key_from_uri(source.artifact_uri)
    label = f"model archive {artifact_label(store, key)}"
    try:
        size = store.stat(key).size
    except ArtifactNotFound:
        raise ValidationError(f"model: the {label} does not exist", field="model") from None
    scratch = Path(tempfile.mkdtemp(prefix=f".{root.name}-", dir=root.parent))
    try:
        model_dir = scratch / "model"
        model_dir.mkdir()
        if source.pin is None:
            with store.open(key) as stream:
                extract(stream, model_dir, archive_size=size, label=label, field="model")
        else:
            # One read: the bytes are hashed as they are unpacked, and nothing unpacked is
            # used unless the whole object matched the pin.
            with open_verified(store, key, source.pin, owner=source.pinned_by) as verified:
                buffered = io.BufferedReader(verified, READ_BUFFER)
                try:
                    extract(buffered, model_dir, archive_size=size, label=label, field="model")
                finally:
                    # Leaves `verified` open: what it read ahead is hashed already. A refused
                    # archive is read to its end too: a swapped one says so, rather than
                    # why it cannot be unpacked.
                    buffered.detach()
                    verified.finish()
        (scratch / CHECKED_MARKER).write_text(source.pin.sha256 if source.pin else "")
        _readable_by_all(scratch)
        if root.exists():
            shutil.rmtree(root)  # staged from other content: never served again
        os.replace(scratch, root)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _checked_against(root: Path) -> str | None:
    try:
        return (root / CHECKED_MARKER).read_text().strip()
    except OSError:
        return None


@contextlib.contextmanager
def _locked(root: Path) -> Iterator[None]:
    """The lock of one staged model (a file beside its folder). A removal unlinks the lock
    file while holding it; whoever then holds the unlinked file locks again, on a new one."""
    path = root.parent / f"{root.name}.lock"
    while True:
        handle = open(path, "a+")  # noqa: SIM115 - closed below, after the unlock
        try:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                current = os.stat(path).st_ino
            except FileNotFoundError:
                current = None
            if current != os.fstat(handle.fileno()).st_ino:
                continue  # removed while we waited for it
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
            return
        finally:
            handle.close()


def _readable_by_all(root: Path) -> None:
    """Serving containers of framework images run as an unprivileged user: the unpacked model
    must be readable (and its folders searchable) by it, whatever modes the archive held."""
    for folder, _dirs, files in os.walk(root):
        os.chmod(folder, 0o755)  # noqa: S103 - the model is not secret from its own container
        for name in files:
            path = os.path.join(folder, name)
            if not os.path.islink(path):
                os.chmod(path, os.stat(path).st_mode | 0o444)


# --- removal ------------------------------------------------------------------------------


def _needed() -> set[str]:
    return {staged_model_root(uri).name for provider in _in_use.values() for uri in provider()}


def staged_models_prune() -> int:
    """Remove every staged model no consumer needs, and scratch folders of stagings that
    died; returns how many folders went."""
    folder = serving_folder()
    try:
        entries = list(os.scandir(folder))
    except FileNotFoundError:
        return 0
    needed = _needed()
    removed = 0
    for entry in entries:
        scratch = SCRATCH_FOLDER.fullmatch(entry.name)
        name = scratch.group(1) if scratch else entry.name
        if not entry.is_dir(follow_symlinks=False) or not (
            scratch or STAGED_FOLDER.fullmatch(name)
        ):
            continue
        if not scratch and name in needed:
            continue
        root = folder / name
        with _locked(root):
            # Again under the lock: a consumer may have come since `needed` was read. A
            # scratch folder is a staging's only while it holds this lock.
            if scratch is None and name in _needed():
                continue
            shutil.rmtree(entry.path, ignore_errors=True)
            if not root.exists():
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(folder / f"{name}.lock")
        removed += 1
    return removed


def job_folders_prune() -> int:
    """Remove the work folders of jobs that ended (a while ago) or are gone."""
    folder = Path(settings.JOBS_WORK_DIR)
    try:
        entries = [e for e in os.scandir(folder) if JOB_FOLDER.fullmatch(e.name)]
    except FileNotFoundError:
        return 0
    ids = {int(entry.name.removeprefix("job-")): entry for entry in entries}
    known = {
        pk: (status, ended_at)
        for pk, status, ended_at in Job.objects.filter(pk__in=list(ids)).values_list(
            "pk", "status", "ended_at"
        )
    }
    horizon = timezone.now() - ENDED_GRACE
    removed = 0
    for job_id, entry in ids.items():
        status, ended_at = known.get(job_id, (None, None))
        if status in ACTIVE_STATUSES or (status is not None and (ended_at or horizon) > horizon):
            continue  # running, or its runner may still be cleaning up
        log.info("removing the work folder of job %s (%s)", job_id, status or "deleted")
        shutil.rmtree(entry.path, ignore_errors=True)
        removed += 1
    return removed


def staging_prune() -> dict[str, int]:
    return {"staged_models": staged_models_prune(), "job_folders": job_folders_prune()}
