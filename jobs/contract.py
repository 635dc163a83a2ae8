"""Laying out the SageMaker `/opt/ml` tree for a job, and packing its results.

Pure file work, no database: the runner decides when, this module knows where and how.
"""

from __future__ import annotations

import json
import os
import shutil
import tarfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from compute import archives
from studio.artifacts import ArtifactStore
from studio.artifacts.integrity import artifact_label

FULLY_REPLICATED = "FullyReplicated"
SHARDED_BY_S3_KEY = "ShardedByS3Key"
DISTRIBUTIONS = (FULLY_REPLICATED, SHARDED_BY_S3_KEY)

REGION = "local"
ACCOUNT = "000000000000"


@dataclass(frozen=True)
class OptMl:
    """Host paths of one job's /opt/ml."""

    root: Path

    @property
    def config(self) -> Path:
        return self.root / "input" / "config"

    @property
    def data(self) -> Path:
        return self.root / "input" / "data"

    @property
    def model(self) -> Path:
        return self.root / "model"

    @property
    def output(self) -> Path:
        return self.root / "output"

    @property
    def output_data(self) -> Path:
        return self.root / "output" / "data"

    @property
    def code(self) -> Path:
        return self.root / "code"

    @property
    def run_artifacts(self) -> Path:
        """Where the Studiolo client in a job copies what `run.log_artifact` is given; the
        runner uploads it into the job's run when the job ends (not a SageMaker path)."""
        return self.root / "output" / "artifacts"

    @property
    def failure_file(self) -> Path:
        return self.output / "failure"

    def create(self) -> None:
        if self.root.exists():
            shutil.rmtree(self.root)  # a retried preparation starts clean
        for folder in (
            self.config,
            self.data,
            self.model,
            self.output_data,
            self.run_artifacts,
            self.code,
            self.root / "checkpoints",
        ):
            folder.mkdir(parents=True, exist_ok=True)

    def make_writable_for(self, uid: int, gid: int) -> None:
        """Hand the tree to the container's (non-root) user."""
        for folder, dirs, files in os.walk(self.root):
            os.chown(folder, uid, gid)
            for name in dirs + files:
                os.chown(os.path.join(folder, name), uid, gid, follow_symlinks=False)

    def failure_text(self) -> str:
        try:
            return self.failure_file.read_text(errors="replace").strip()
        except FileNotFoundError:
            return ""


def training_job_arn(name: str) -> str:
    return f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:training-job/{name}"


def resource_config(current_host: str, hosts: Sequence[str], instance_type: str) -> dict[str, Any]:
    """resourceconfig.json as SageMaker writes it for training (processing's has the same
    first keys)."""
    hosts = sorted(hosts)  # SageMaker sorts them (as strings)
    return {
        "current_host": current_host,
        "hosts": hosts,
        "network_interface_name": "eth0",
        "current_instance_type": instance_type,
        "current_group_name": "homogeneousCluster",
        "instance_groups": [
            {
                "instance_group_name": "homogeneousCluster",
                "instance_type": instance_type,
                "hosts": hosts,
            }
        ],
    }


def write_config(
    opt_ml: OptMl,
    *,
    hyperparameters: dict[str, str],
    channels: list[dict[str, str]],
    instance_type: str,
    current_host: str = "algo-1",
    hosts: Sequence[str] = ("algo-1",),
) -> None:
    resource = resource_config(current_host, hosts, instance_type)
    input_config = {
        channel["name"]: {
            "TrainingInputMode": channel.get("input_mode") or "File",
            "S3DistributionType": channel.get("distribution") or FULLY_REPLICATED,
            "RecordWrapperType": "None",
            **({"ContentType": channel["content_type"]} if channel.get("content_type") else {}),
        }
        for channel in channels
    }
    (opt_ml.config / "hyperparameters.json").write_text(json.dumps(hyperparameters))
    (opt_ml.config / "resourceconfig.json").write_text(json.dumps(resource))
    (opt_ml.config / "inputdataconfig.json").write_text(json.dumps(input_config))


Progress = Callable[[int, int, int, int], None]  # files done, files total, bytes done, bytes total


def download_prefix_or_object(
    store: ArtifactStore,
    key: str,
    destination: Path,
    progress: Progress | None = None,
    *,
    shard: tuple[int, int] = (0, 1),
) -> int:
    """Copy one object, or every object below a prefix, into `destination`. Returns bytes.

    `shard` (index, count): ShardedByS3Key, this instance's share only: the objects in key
    order, the i-th to instance i mod count, so the N shares are disjoint and cover all."""
    if store.exists(key):
        objects = [(store.stat(key), Path(key).name)]
    else:
        prefix = key.rstrip("/") + "/"
        objects = [(info, info.key[len(prefix) :]) for info in store.list(prefix)]
    index, count = shard
    if count > 1:
        objects = sorted(objects, key=lambda item: item[0].key)[index::count]
    total_bytes = sum(info.size for info, _ in objects)
    done_bytes = 0
    last_report = 0.0
    for index, (info, relative) in enumerate(objects, start=1):
        target = destination / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        with store.open(info.key) as source, open(target, "wb") as sink:
            while chunk := source.read(1024 * 1024):
                sink.write(chunk)
                done_bytes += len(chunk)
                if progress and time.monotonic() - last_report > 0.5:
                    progress(index - 1, len(objects), done_bytes, total_bytes)
                    last_report = time.monotonic()
    if progress:
        progress(len(objects), len(objects), done_bytes, total_bytes)
    return done_bytes


def stage_source(store: ArtifactStore, key: str, code_dir: Path) -> None:
    """Pre-extract the user's code into /opt/ml/code, so the container needs no store access
    (the training toolkit uses /opt/ml/code as it is when it is not empty). The archive is
    unpacked within the archive limits (compute.archives), which the submission could only
    check in part."""
    if store.exists(key):
        label = f"source archive {artifact_label(store, key)}"
        with store.open(key) as stream:
            archives.extract(
                stream,
                code_dir,
                archive_size=store.stat(key).size,
                label=label,
                field="source_uri",
            )
    else:
        download_prefix_or_object(store, key, code_dir)


def pack_folder(folder: Path, archive_path: Path) -> None:
    """model.tar.gz layout: the folder's contents at the archive root, as SageMaker does."""
    with tarfile.open(archive_path, "w:gz", compresslevel=6) as archive:
        for entry in sorted(folder.iterdir()):
            archive.add(entry, arcname=entry.name)


def upload_file(store: ArtifactStore, path: Path, key: str) -> None:
    with open(path, "rb") as stream:
        store.put(key, stream, content_type="application/gzip")
