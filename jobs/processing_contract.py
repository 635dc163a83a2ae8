"""The container side of a processing job (SageMaker's CreateProcessingJob, contract §5):
the config files in `/opt/ml/config/`, one host's `/opt/ml/processing/...` tree, the upload
of its outputs and the exit message.

Pure file work, no database: the runner (`jobs.processing`) decides when, this module knows
where and how. Where SageMaker's layout differs from training's (config in `/opt/ml/config`,
not `/opt/ml/input/config`; no `train` argument; `output/message`, not `output/failure`),
this follows SageMaker.
"""

from __future__ import annotations

import json
import os
import posixpath
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypedDict

from jobs.contract import ACCOUNT, REGION
from studio.artifacts import ArtifactStore

PROCESSING_ROOT = "/opt/ml/processing"
# What the ScriptProcessor of the SageMaker SDK uses: the script is input `code`.
CODE_INPUT = "code"
CODE_LOCAL_PATH = f"{PROCESSING_ROOT}/input/code"
# SageMaker's default volume; the studio gives no volume of its own, but the config file
# says what SageMaker would.
VOLUME_SIZE_GB = 30
EXIT_MESSAGE_LIMIT = 1024
NETWORK_INTERFACE = "eth0"


class ProcessingInput(TypedDict):
    """One ProcessingInput as checked by `jobs.services.processing` (S3Input's fields)."""

    name: str
    uri: str  # the store's URI of an object or a prefix
    local_path: str  # under /opt/ml/processing/
    distribution: str  # FullyReplicated | ShardedByS3Key
    input_mode: str  # File


class ProcessingOutput(TypedDict):
    name: str
    uri: str  # the store's URI of a prefix: every file goes to <uri>/<relative path>
    local_path: str
    upload_mode: str  # EndOfJob | Continuous


class ProcessingSettings(TypedDict):
    """`Job.processing`: what CreateProcessingJob says beyond the fields every job has."""

    inputs: list[ProcessingInput]
    outputs: list[ProcessingOutput]
    code: str  # the script (file name) of a script processor, "" for an image's own program
    exit_message: str  # written at the end: the first KB of /opt/ml/output/message


def processing_job_arn(name: str) -> str:
    return f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:processing-job/{name}"


def local_path_problem(path: str) -> str | None:
    """Why `path` cannot be a LocalPath, or None. SageMaker's rule (under
    /opt/ml/processing/, at most 256 characters), and normalised: `..`, `.`, `//` or a
    trailing slash could name a place outside the tree or two names for one folder."""
    if len(path) > 256:
        return "at most 256 characters"
    if not path.startswith(PROCESSING_ROOT + "/") or path == PROCESSING_ROOT + "/":
        return f"must be a folder under {PROCESSING_ROOT}/"
    if posixpath.normpath(path) != path:
        return "must be normalised (no '.', '..', '//' or trailing '/')"
    if any(ord(char) < 32 for char in path):
        return "must not contain control characters"
    return None


def is_within(inner: str, outer: str) -> bool:
    """Whether folder `inner` is `outer` or lies below it (both normalised)."""
    return inner == outer or inner.startswith(outer.rstrip("/") + "/")


@dataclass(frozen=True)
class ProcessingHost:
    """Host paths of one instance's /opt/ml (mounted as /opt/ml in its container)."""

    root: Path

    @property
    def config(self) -> Path:
        return self.root / "config"

    @property
    def output(self) -> Path:
        return self.root / "output"

    @property
    def message_file(self) -> Path:
        return self.output / "message"

    def path(self, local_path: str) -> Path:
        """The host folder behind a container path under /opt/ml/processing/."""
        if local_path_problem(local_path) is not None:
            raise ValueError(f"not a processing LocalPath: {local_path!r}")
        return self.root / posixpath.relpath(local_path, "/opt/ml")

    def create(self, settings: ProcessingSettings) -> None:
        """The folders the container finds when it starts: config, output, every input's
        folder and every output's folder, created empty before the entrypoint runs (as
        SageMaker does)."""
        for folder in (self.config, self.output, self.root / "processing"):
            folder.mkdir(parents=True, exist_ok=True)
        for item in (*settings["inputs"], *settings["outputs"]):
            self.path(item["local_path"]).mkdir(parents=True, exist_ok=True)

    def make_writable_for(self, uid: int, gid: int) -> None:
        """Hand the tree to the container's user. SageMaker runs processing containers as
        root, so everything under /opt/ml/processing is the script's to write; the studio's
        framework images run scripts as an unprivileged user, who gets the same."""
        for folder, dirs, files in os.walk(self.root):
            os.chown(folder, uid, gid)
            for name in dirs + files:
                os.chown(os.path.join(folder, name), uid, gid, follow_symlinks=False)

    def exit_message(self) -> str:
        """The first KB of /opt/ml/output/message (DescribeProcessingJob's ExitMessage)."""
        try:
            with open(self.message_file, "rb") as stream:
                head = stream.read(EXIT_MESSAGE_LIMIT * 4)
        except (FileNotFoundError, IsADirectoryError):
            return ""
        return head.decode(errors="replace")[:EXIT_MESSAGE_LIMIT].strip()


def processing_job_config(
    *,
    name: str,
    image: str,
    entrypoint: Sequence[str] | None,
    arguments: Sequence[str] | None,
    environment: dict[str, str],
    settings: ProcessingSettings,
    instance_type: str,
    instance_count: int,
    max_runtime_seconds: int,
    enable_network: bool,
    role_arn: str = "",
) -> dict[str, Any]:
    """`/opt/ml/config/processingjobconfig.json`: the request as SageMaker copies it in
    (keys and nesting of CreateProcessingJob, with the defaults it fills in)."""
    app: dict[str, Any] = {"ImageUri": image}
    if entrypoint:
        app["ContainerEntrypoint"] = list(entrypoint)
    if arguments:
        app["ContainerArguments"] = list(arguments)
    return {
        "ProcessingJobArn": processing_job_arn(name),
        "ProcessingJobName": name,
        "AppSpecification": app,
        "Environment": dict(environment),
        "ProcessingInputs": [
            {
                "InputName": item["name"],
                "AppManaged": False,
                "S3Input": {
                    "S3Uri": item["uri"],
                    "LocalPath": item["local_path"],
                    "S3DataType": "S3Prefix",
                    "S3InputMode": item["input_mode"],
                    "S3DataDistributionType": item["distribution"],
                    "S3CompressionType": "None",
                },
            }
            for item in settings["inputs"]
        ],
        "ProcessingOutputConfig": {
            "Outputs": [
                {
                    "OutputName": item["name"],
                    "AppManaged": False,
                    "S3Output": {
                        "S3Uri": item["uri"],
                        "LocalPath": item["local_path"],
                        "S3UploadMode": item["upload_mode"],
                    },
                }
                for item in settings["outputs"]
            ],
        },
        "ProcessingResources": {
            "ClusterConfig": {
                "InstanceCount": instance_count,
                "InstanceType": instance_type,
                "VolumeSizeInGB": VOLUME_SIZE_GB,
            }
        },
        "NetworkConfig": {
            "EnableNetworkIsolation": not enable_network,
            "EnableInterContainerTrafficEncryption": False,
        },
        "RoleArn": role_arn or f"arn:aws:iam::{ACCOUNT}:role/studiolo",
        "StoppingCondition": {"MaxRuntimeInSeconds": max_runtime_seconds},
    }


def resource_config(current_host: str, hosts: Sequence[str]) -> dict[str, Any]:
    """`/opt/ml/config/resourceconfig.json`: which instance this is and its peers."""
    return {
        "current_host": current_host,
        "hosts": sorted(hosts),
        "network_interface_name": NETWORK_INTERFACE,
    }


def write_config(
    host: ProcessingHost, *, job_config: dict[str, Any], current_host: str, hosts: Sequence[str]
) -> None:
    host.config.mkdir(parents=True, exist_ok=True)
    (host.config / "processingjobconfig.json").write_text(json.dumps(job_config, indent=2))
    (host.config / "resourceconfig.json").write_text(
        json.dumps(resource_config(current_host, hosts))
    )


def shard_share(keys: Sequence[str], index: int, count: int) -> list[str]:
    """ShardedByS3Key: the objects sorted by key, object i to instance i % count. Each
    instance gets a disjoint share; together they cover every object."""
    return [key for position, key in enumerate(sorted(keys)) if position % count == index]


def output_files(folder: Path) -> Iterator[tuple[Path, str]]:
    """Every regular file below `folder` with its relative POSIX path, in a stable order
    (symbolic links are not followed: a link could point out of the instance's tree)."""
    for current, dirs, files in os.walk(folder):
        dirs.sort()
        for name in sorted(files):
            path = Path(current) / name
            if path.is_symlink() or not path.is_file():
                continue
            yield path, path.relative_to(folder).as_posix()


FileUploaded = Callable[[str, int], None]  # key, bytes


def upload_output(
    store: ArtifactStore,
    folder: Path,
    prefix_key: str,
    *,
    skip: Callable[[Path, str], bool] | None = None,
    uploaded: FileUploaded | None = None,
) -> tuple[int, int]:
    """Every file under `folder` → `<prefix_key>/<relative path>`. Several instances upload
    to the same prefix, as on SageMaker (a file of the same name from two instances: the
    last one uploaded stays). Returns (files, bytes)."""
    files = size = 0
    base = prefix_key.rstrip("/")
    for path, relative in output_files(folder):
        if skip is not None and skip(path, relative):
            continue
        key = f"{base}/{relative}"
        with open(path, "rb") as stream:
            info = store.put(key, stream)
        files += 1
        size += info.size
        if uploaded is not None:
            uploaded(key, info.size)
    return files, size
