"""What a transform reads: its model, checked again when the job starts (`model_source`), and
the objects below its input prefix, downloaded into the job's work folder in key order, each
with its count of records (the progress total)."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath

from compute.serving import ServingSource
from jobs.models import Job
from registry.models import ModelPackage
from registry.services.approval import package_require_deployable
from studio.artifacts import ArtifactStore
from studio.artifacts.integrity import ArtifactPin
from studio.errors import ValidationError
from transform.records import count_records
from transform.services import TransformSettings


@dataclass(frozen=True)
class InputObject:
    relative: str  # below the input prefix; the answers go to <output path>/<relative>.out
    path: Path  # the downloaded copy
    records: int


def model_source(job: Job, settings: TransformSettings) -> ServingSource:
    """The package may have been rejected since the job was submitted. Returns what the
    container serves: the model copied into the job at submission, with its package's
    pin (which never changes), checked when it is staged."""
    source = ServingSource(
        image=job.image,
        artifact_uri=settings["model_artifact_uri"],
        environment={**settings["model_environment"], **job.environment},
        program=settings["program"],
    )
    package_id = settings["model_package_id"]
    if package_id is None:
        return source  # an admin's image model: not from the registry
    package = ModelPackage.objects.select_related("group").filter(pk=package_id).first()
    if package is None:
        raise ValidationError(
            f"model: the model package {settings['model']} does not exist any more",
            field="model",
        )
    package_require_deployable(package)  # Approved, and pinned
    pin = ArtifactPin(sha256=package.artifact_sha256, size=package.artifact_size or 0)
    return replace(source, pin=pin, pinned_by=f"package {package}")


def inputs_list(store: ArtifactStore, key: str) -> list[tuple[str, str, int]]:
    """(key, path relative to the input prefix, size) of every input object, in key order.
    An input URI naming one object is that object alone (relative path: its name)."""
    if store.exists(key):
        return [(key, PurePosixPath(key).name, store.stat(key).size)]
    prefix = key.rstrip("/") + "/"
    found = []
    for info in store.list(prefix):
        relative = info.key[len(prefix) :]
        if not relative or relative.endswith("/"):
            continue  # folder markers some S3 tools write
        if ".." in PurePosixPath(relative).parts:
            raise ValidationError(f"input_uri: unsafe object key {info.key!r}", field="input_uri")
        found.append((info.key, relative, info.size))
    return found


def inputs_download(
    store: ArtifactStore,
    listing: list[tuple[str, str, int]],
    folder: Path,
    *,
    split_type: str,
    check: Callable[[], None],
    report: Callable[[str, bool], None],
) -> list[InputObject]:
    """Download the listed objects below `folder` (emptied first). `check` raises to stop
    between objects; `report(message, force)` tells the progress."""
    shutil.rmtree(folder, ignore_errors=True)
    total = sum(size for _, _, size in listing)
    done = 0
    objects: list[InputObject] = []
    for index, (key, relative, size) in enumerate(listing, start=1):
        check()
        target = folder / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        with store.open(key) as source, target.open("wb") as sink:
            shutil.copyfileobj(source, sink, 1024 * 1024)
        done += size
        report(
            f"Downloading input data: {index}/{len(listing)} objects, "
            f"{done / 1e6:.1f}/{total / 1e6:.1f} MB",
            index == len(listing),
        )
        objects.append(InputObject(relative, target, count_records(target, split_type)))
    return objects
