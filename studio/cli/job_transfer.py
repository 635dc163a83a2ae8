"""What `studiolo train` sends before it submits: the packed source and local input data.

Like the SageMaker SDK, the source folder travels as `sourcedir.tar.gz` with its files at
the archive root, and local inputs are uploaded under the job's name so a channel is a
folder URI in the studio's artifact store.
"""

from __future__ import annotations

import os
import re
import sys
import tarfile
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import quote

import httpx

# The server's own name rules, checked here before anything is uploaded (a module of the
# standard library only: this client path imports no Django).
from jobs.names import CHANNEL_NAME_RULE, JOB_NAME_RULE, MAX_JOB_NAME, is_channel_name, is_job_name
from studio.cli.client import ApiClient
from studio.cli.common import CliError

# Upload bodies can be large and the server writes them to the store before it answers.
UPLOAD_TIMEOUT = httpx.Timeout(600.0, connect=5.0)
# Never part of a training script's source (SageMaker's SDK would pack them; they only
# cost time and leak history).
SKIPPED_FOLDERS = frozenset({"__pycache__", ".git"})
URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*://")


class JobClient(ApiClient):
    """The API client plus what jobs need beyond JSON: raw uploads and the log websocket."""

    def __init__(
        self, base_url: str, token: str | None, *, transport: httpx.BaseTransport | None = None
    ) -> None:
        super().__init__(base_url, token, transport=transport)
        self.token = token

    def upload(self, key: str, path: Path) -> dict[str, Any]:
        """PUT one local file to the artifact store (streamed); the API's {key, size, uri}."""
        url = "/api/v1/artifacts/" + quote(key, safe="/")
        with path.open("rb") as stream:
            answer: dict[str, Any] = self.request(
                "PUT", url, content=stream, timeout=UPLOAD_TIMEOUT
            )
        return answer

    def websocket_url(self, path: str) -> str:
        scheme, rest = self.base_url.split("://", 1)
        return ("wss" if scheme == "https" else "ws") + "://" + rest + path

    def origin(self) -> str:
        """The studio's own origin. Sent with the log websocket because Channels'
        AllowedHostsOriginValidator refuses a handshake without one; it names a host the
        studio accepts already (ALLOWED_HOSTS is checked for the HTTP requests too)."""
        scheme, rest = self.base_url.split("://", 1)
        return f"{scheme}://{rest.split('/', 1)[0]}"


def note(message: str) -> None:
    """Progress for people, on stderr: stdout stays for what scripts capture."""
    print(message, file=sys.stderr, flush=True)


def default_job_name(entry_point: str, now: datetime | None = None) -> str:
    """`<entry point stem>-<UTC time to the millisecond>`, as the SageMaker SDK names jobs
    (`train-2025-01-31-12-34-56-789`); the stem is cut and cleaned to fit the name rule."""
    stamp = (now or datetime.now(UTC)).strftime("%Y-%m-%d-%H-%M-%S-%f")[:-3]
    base = re.sub(r"[^A-Za-z0-9]+", "-", PurePosixPath(entry_point).stem).strip("-") or "job"
    base = base[: MAX_JOB_NAME - len(stamp) - 1].rstrip("-")
    return f"{base}-{stamp}"


def check_job_name(name: str) -> None:
    if not is_job_name(name):
        raise CliError(f"--name {name!r}: {JOB_NAME_RULE}", code=2)


def check_entry_point(source_dir: Path, entry_point: str) -> None:
    """Exit 2, before anything is uploaded, when the script is not where the job looks."""
    if not source_dir.is_dir():
        raise CliError(f"--source-dir {source_dir}: not a folder", code=2)
    relative = PurePosixPath(entry_point)
    if relative.is_absolute() or ".." in relative.parts or not relative.parts:
        raise CliError(
            f"--entry-point {entry_point!r}: give a path relative to --source-dir", code=2
        )
    if not (source_dir / relative).is_file():
        raise CliError(
            f"--entry-point {entry_point!r}: no such file in {source_dir} "
            "(the entry point is relative to --source-dir)",
            code=2,
        )
    if SKIPPED_FOLDERS & set(relative.parts[:-1]):
        raise CliError(
            f"--entry-point {entry_point!r}: inside a folder that is not packed "
            f"({', '.join(sorted(SKIPPED_FOLDERS))})",
            code=2,
        )


def _walk(root: Path, *, skip: frozenset[str] = frozenset()) -> Iterator[tuple[Path, str]]:
    """Every file below `root` with its POSIX path relative to it, in a stable order."""
    for folder, subfolders, files in os.walk(root):
        subfolders[:] = sorted(name for name in subfolders if name not in skip)
        for name in sorted(files):
            path = Path(folder) / name
            yield path, path.relative_to(root).as_posix()


@dataclass
class PackedSource:
    path: Path
    files: int
    size: int


def pack_source(source_dir: Path, into: Path) -> PackedSource:
    """`sourcedir.tar.gz` of `source_dir`: its files at the archive root (no leading folder,
    what the container expects under /opt/ml/code), symlinks followed."""
    archive_path = into / "sourcedir.tar.gz"
    count = 0
    with tarfile.open(archive_path, "w:gz", dereference=True) as archive:
        for path, name in _walk(source_dir, skip=SKIPPED_FOLDERS):
            archive.add(path, arcname=name, recursive=False)
            count += 1
    return PackedSource(archive_path, count, archive_path.stat().st_size)


def upload_source(client: JobClient, source_dir: Path, *, team: str, job_name: str) -> str:
    """Pack and upload the source folder; its URI for the job's `source_uri`."""
    # Imported here: the store package loads boto3, which would double every command's start.
    from studio.artifacts.keys import team_prefix

    key = f"{team_prefix(team)}jobs-source/{job_name}/sourcedir.tar.gz"
    with tempfile.TemporaryDirectory(prefix="studiolo-") as scratch:
        packed = pack_source(source_dir, Path(scratch))
        note(f"Uploading {source_dir} ({packed.files} files, {_size(packed.size)} packed) as {key}")
        return str(client.upload(key, packed.path)["uri"])


@dataclass(frozen=True)
class InputSpec:
    """One `--input NAME=VALUE`: a local file or folder to upload, or a URI as given."""

    channel: str
    uri: str = ""
    local: Path | None = None


def parse_inputs(pairs: list[tuple[str, str]]) -> list[InputSpec]:
    """Checks every `--input` before anything is uploaded (exit 2 on a bad one)."""
    specs: list[InputSpec] = []
    seen: set[str] = set()
    for channel, value in pairs:
        if not is_channel_name(channel):
            raise CliError(f"--input {channel}=...: channel names are {CHANNEL_NAME_RULE}", code=2)
        if channel in seen:
            raise CliError(f"--input {channel}=...: channel given twice", code=2)
        seen.add(channel)
        if URI.match(value):
            specs.append(InputSpec(channel, uri=value))
            continue
        path = Path(value).expanduser()
        if path.is_file() or (path.is_dir() and next(_walk(path), None) is not None):
            specs.append(InputSpec(channel, local=path))
        elif path.is_dir():
            raise CliError(f"--input {channel}={value}: the folder holds no files", code=2)
        else:
            raise CliError(
                f"--input {channel}={value}: neither a local file or folder nor a URI "
                "(s3://..., file://...)",
                code=2,
            )
    return specs


def upload_input(client: JobClient, spec: InputSpec, *, team: str, job_name: str) -> str:
    """Upload a local input below `teams/<team>/jobs-input/<job>/<channel>/`; the folder's
    URI, which is the channel (as an S3 prefix is in SageMaker)."""
    if spec.local is None:
        return spec.uri
    # Imported here: the store package loads boto3, which would double every command's start.
    from studio.artifacts.keys import team_prefix

    prefix = f"{team_prefix(team)}jobs-input/{job_name}/{spec.channel}"
    local = spec.local
    files = [(local, local.name)] if local.is_file() else list(_walk(local))
    total = sum(path.stat().st_size for path, _ in files)
    note(f"Uploading {spec.local} ({len(files)} files, {_size(total)}) as {prefix}/")
    uri = ""
    for path, relative in files:
        answer = client.upload(f"{prefix}/{relative}", path)
        # An object's URI is the store's base followed by its key (s3://bucket/root/<key>,
        # file:///root/<key>): the folder's URI is that base followed by the prefix.
        object_uri, key = str(answer["uri"]), str(answer["key"])
        uri = object_uri[: len(object_uri) - len(key)] + prefix
    return uri


def _size(size: int) -> str:
    if size < 1024:
        return f"{size} B"
    if size < 1024 * 1024:
        return f"{size / 1024:.1f} KB"
    return f"{size / (1024 * 1024):.1f} MB"
