"""Staging the user's code, and the success/failure markers."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from studiolo_toolkit.environment import Paths
from studiolo_toolkit.errors import ToolkitError
from studiolo_toolkit.files import (
    extract_archive,
    stage_code,
    write_failure_file,
    write_success_file,
)

# The fallback path calls extractall() without a filter, which Python 3.12+ warns about; on
# the Python it exists for (3.11.2) there is no such warning.
pytestmark = pytest.mark.filterwarnings(
    "ignore:Python 3.14 will, by default, filter:DeprecationWarning"
)


def _tarball(path: Path, members: dict[str, bytes], links: dict[str, str] | None = None) -> Path:
    with tarfile.open(path, "w:gz") as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type = tarfile.SYMTYPE
            info.linkname = target
            archive.addfile(info)
    return path


@pytest.fixture(params=["data_filter", "bookworm_fallback"])
def extraction(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run extraction tests both with Python's ``data`` filter and without it (3.11.2)."""
    mode: str = request.param
    if mode == "bookworm_fallback":
        monkeypatch.delattr(tarfile, "data_filter", raising=False)
    return mode


@pytest.mark.usefixtures("extraction")
def test_a_source_tarball_is_extracted_with_its_subdirectories(tmp_path: Path) -> None:
    tarball = _tarball(tmp_path / "src.tar.gz", {"train.py": b"print(1)\n", "pkg/util.py": b""})
    paths = Paths(str(tmp_path / "ml"))

    stage_code(paths, f"file://{tarball}")

    assert (tmp_path / "ml" / "code" / "train.py").read_bytes() == b"print(1)\n"
    assert (tmp_path / "ml" / "code" / "pkg" / "util.py").exists()


@pytest.mark.usefixtures("extraction")
def test_a_member_that_would_land_outside_the_code_dir_is_refused(tmp_path: Path) -> None:
    tarball = _tarball(tmp_path / "evil.tar.gz", {"../escape.py": b"x"})
    destination = tmp_path / "code"
    destination.mkdir()

    with tarfile.open(tarball) as archive, pytest.raises(ToolkitError, match="refusing"):
        extract_archive(archive, str(destination))

    assert not (tmp_path / "escape.py").exists()


@pytest.mark.usefixtures("extraction")
def test_an_absolute_member_name_is_extracted_inside_the_code_dir(tmp_path: Path) -> None:
    tarball = _tarball(tmp_path / "abs.tar.gz", {"/abs/inside.py": b"x"})
    destination = tmp_path / "code"
    destination.mkdir()

    with tarfile.open(tarball) as archive:
        extract_archive(archive, str(destination))

    assert (destination / "abs" / "inside.py").read_bytes() == b"x"


@pytest.mark.usefixtures("extraction")
def test_a_symlink_pointing_outside_the_code_dir_is_refused(tmp_path: Path) -> None:
    tarball = _tarball(tmp_path / "link.tar.gz", {}, links={"passwd": "../../../etc/passwd"})
    destination = tmp_path / "code"
    destination.mkdir()

    with tarfile.open(tarball) as archive, pytest.raises(ToolkitError, match="refusing"):
        extract_archive(archive, str(destination))


def test_a_non_empty_code_dir_is_used_as_is(tmp_path: Path) -> None:
    paths = Paths(str(tmp_path))
    Path(paths.code_dir).mkdir()
    (Path(paths.code_dir) / "train.py").write_text("staged")

    stage_code(paths, "s3://bucket/never/fetched.tar.gz")

    assert (Path(paths.code_dir) / "train.py").read_text() == "staged"


def test_an_opt_ml_path_is_found_under_a_relocated_base(tmp_path: Path) -> None:
    # SDK network isolation: the code arrives as a `code` channel at an /opt/ml path.
    paths = Paths(str(tmp_path))
    channel = tmp_path / "input" / "data" / "code"
    channel.mkdir(parents=True)
    _tarball(channel / "sourcedir.tar.gz", {"train.py": b"ok"})

    stage_code(paths, "/opt/ml/input/data/code/sourcedir.tar.gz")

    assert (Path(paths.code_dir) / "train.py").read_bytes() == b"ok"


def test_a_submit_directory_that_is_not_an_archive_is_refused(tmp_path: Path) -> None:
    not_a_tarball = tmp_path / "train.py"
    not_a_tarball.write_text("print(1)")

    with pytest.raises(ToolkitError, match="neither a directory nor a tar archive"):
        stage_code(Paths(str(tmp_path / "ml")), str(not_a_tarball))


def test_an_unsupported_scheme_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ToolkitError, match="unsupported scheme 'https'"):
        stage_code(Paths(str(tmp_path)), "https://example.invalid/sourcedir.tar.gz")


def test_the_failure_file_is_written_once_and_never_overwritten(tmp_path: Path) -> None:
    paths = Paths(str(tmp_path))

    assert write_failure_file(paths, "first") is True
    assert write_failure_file(paths, "second") is False
    assert (tmp_path / "output" / "failure").read_text() == "first"


def test_the_success_marker_is_an_empty_file(tmp_path: Path) -> None:
    write_success_file(Paths(str(tmp_path)))

    assert (tmp_path / "output" / "success").read_bytes() == b""
