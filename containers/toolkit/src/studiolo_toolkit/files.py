"""Files the toolkit reads and writes: the user's code, and the success/failure markers."""

from __future__ import annotations

import os
import shutil
import tarfile
from urllib.parse import unquote, urlparse

from studiolo_toolkit.environment import Paths
from studiolo_toolkit.errors import ToolkitError


def stage_code(paths: Paths, submit_directory: str | None) -> None:
    """Make the user's code available in ``<base>/code`` (TTK ``files.download_and_extract``).

    A non-empty code dir wins: the platform pre-extracts ``sourcedir.tar.gz`` there, so the
    container never needs S3 access. Otherwise ``submit_directory`` (a local path or ``file://``
    URI to a directory or a tar archive) is copied or extracted into it.
    """
    code_dir = paths.code_dir
    os.makedirs(code_dir, exist_ok=True)
    if os.listdir(code_dir) or not submit_directory:
        return
    source = _local_path(submit_directory, paths)
    if os.path.isdir(source):
        if os.path.realpath(source) != os.path.realpath(code_dir):
            shutil.copytree(source, code_dir, dirs_exist_ok=True, symlinks=True)
        return
    if not os.path.isfile(source):
        raise ToolkitError(
            f"sagemaker_submit_directory {submit_directory!r} does not exist "
            f"(looked for {source!r}), and the code directory {code_dir} is empty"
        )
    if not tarfile.is_tarfile(source):
        raise ToolkitError(
            f"sagemaker_submit_directory {submit_directory!r} is neither a directory "
            "nor a tar archive (expected sourcedir.tar.gz)"
        )
    with tarfile.open(source) as archive:
        extract_archive(archive, code_dir)


def _local_path(uri: str, paths: Paths) -> str:
    parsed = urlparse(uri)
    if parsed.scheme == "s3":
        raise ToolkitError(
            f"sagemaker_submit_directory is {uri!r}, but this toolkit does not download code "
            f"from S3: the platform must pre-stage (extract) the code in {paths.code_dir} "
            "(/opt/ml/code inside the container) before starting the job"
        )
    if parsed.scheme == "file":
        path = unquote(parsed.path)
    elif not parsed.scheme:
        path = uri
    else:
        raise ToolkitError(
            f"sagemaker_submit_directory {uri!r} uses an unsupported scheme {parsed.scheme!r}; "
            f"pre-stage the code in {paths.code_dir} or give a local path"
        )
    if os.path.exists(path):
        return path
    return paths.relocate(path)


def extract_archive(archive: tarfile.TarFile, destination: str) -> None:
    """Extract without letting a member escape ``destination`` (no ``..``, no absolute paths).

    Python 3.11.4+ has the ``data`` extraction filter; Debian bookworm ships 3.11.2, which
    does not, so the same checks are made by hand there.
    """
    if hasattr(tarfile, "data_filter"):
        try:
            archive.extractall(destination, filter="data")
        except tarfile.FilterError as error:
            raise ToolkitError(f"refusing to extract the code archive: {error}") from error
        return
    root = os.path.realpath(destination)
    members = []
    for member in archive.getmembers():
        if not (member.isfile() or member.isdir() or member.issym() or member.islnk()):
            continue  # devices and FIFOs have no place in a source archive
        member.name = member.name.lstrip("/")  # absolute names land inside, as with "data"
        target = os.path.realpath(os.path.join(root, member.name))
        if os.path.commonpath([root, target]) != root:
            raise ToolkitError(f"refusing to extract {member.name!r}: outside the code directory")
        if member.issym() or member.islnk():
            link_base = root if member.islnk() else os.path.dirname(target)
            link_target = os.path.realpath(os.path.join(link_base, member.linkname))
            if os.path.commonpath([root, link_target]) != root:
                raise ToolkitError(
                    f"refusing to extract link {member.name!r} -> {member.linkname!r}: "
                    "it points outside the code directory"
                )
        member.mode &= 0o755  # drop setuid/setgid/sticky and world-writable bits
        members.append(member)
    # Every member was checked above; this is the pre-3.11.4 equivalent of filter="data".
    archive.extractall(destination, members=members)  # noqa: S202


def write_failure_file(paths: Paths, message: str) -> bool:
    """Write ``<base>/output/failure`` unless it exists: the script's own words win.

    Returns whether the file was written.
    """
    os.makedirs(paths.output_dir, exist_ok=True)
    try:
        with open(paths.failure_file, "x", encoding="utf-8") as f:
            f.write(message)
    except FileExistsError:
        return False
    return True


def write_success_file(paths: Paths) -> None:
    os.makedirs(paths.output_dir, exist_ok=True)
    with open(paths.success_file, "w", encoding="utf-8"):
        pass
