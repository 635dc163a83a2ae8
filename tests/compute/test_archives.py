"""Unpacking users' archives: every limit refuses a small archive that expands past it, with
the limit named and no host path, having written nothing past it; names and links that
would leave the folder are refused."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path
from typing import Any

import pytest

from compute.archives import ArchiveLimits, ArchiveRefused, extract, scan

MIB = 1024 * 1024
ROOMY = ArchiveLimits(max_bytes=64 * MIB, max_files=1000, max_ratio=10_000)


def tar_gz(*members: tuple[tarfile.TarInfo, bytes | None]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz", compresslevel=9) as archive:
        for info, data in members:
            archive.addfile(info, io.BytesIO(data) if data is not None else None)
    return buffer.getvalue()


def file(name: str, data: bytes) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size, info.mode = len(data), 0o644
    return info, data


def special(name: str, kind: bytes, linkname: str = "") -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, linkname
    return info, None


def unpack(data: bytes, destination: Path, limits: ArchiveLimits = ROOMY) -> int:
    destination.mkdir(parents=True, exist_ok=True)
    return extract(
        io.BytesIO(data),
        destination,
        archive_size=len(data),
        label="source archive teams/a/src.tar.gz",
        field="source_uri",
        limits=limits,
    )


def refusal(data: bytes, destination: Path, limits: ArchiveLimits = ROOMY) -> ArchiveRefused:
    with pytest.raises(ArchiveRefused) as error:
        unpack(data, destination, limits)
    assert error.value.field == "source_uri"
    assert str(destination) not in error.value.message  # never a path on the host
    assert "source archive teams/a/src.tar.gz" in error.value.message
    return error.value


def written(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


def test_a_plain_archive_unpacks_with_its_folders(tmp_path: Path) -> None:
    folder = special("pkg", tarfile.DIRTYPE)
    folder[0].mode = 0o555  # a read-only folder still gets its files
    data = tar_gz(folder, file("pkg/a.py", b"print(1)\n"), file("train.py", b"x = 1\n"))
    assert unpack(data, tmp_path / "out") == 3
    assert (tmp_path / "out" / "pkg" / "a.py").read_bytes() == b"print(1)\n"
    assert (tmp_path / "out" / "train.py").read_bytes() == b"x = 1\n"


def test_content_past_the_ratio_is_refused_naming_the_limit(tmp_path: Path) -> None:
    bomb = tar_gz(file("zeros.bin", bytes(4 * MIB)))
    assert len(bomb) < 8 * 1024  # a few KB that would be 4 MiB
    limits = ArchiveLimits(max_bytes=64 * MIB, max_files=1000, max_ratio=200)
    error = refusal(bomb, tmp_path / "out", limits)
    assert "more than 200 times its own size" in error.message
    assert "(ARCHIVE_MAX_RATIO)" in error.message
    assert written(tmp_path / "out") == 0  # refused at its header, before its content


def test_a_small_archive_of_compressible_content_is_not_refused_for_its_ratio(
    tmp_path: Path,
) -> None:
    data = tar_gz(file("zeros.bin", bytes(MIB // 2)))  # ratio ~ 500, but only 512 KiB
    unpack(data, tmp_path / "out", ArchiveLimits(max_bytes=64 * MIB, max_files=10, max_ratio=2))
    assert written(tmp_path / "out") == MIB // 2


def test_content_past_the_total_is_refused_naming_the_limit(tmp_path: Path) -> None:
    data = tar_gz(file("a.bin", bytes(MIB // 2)), file("b.bin", bytes(MIB)))
    limits = ArchiveLimits(max_bytes=1 * MIB, max_files=1000, max_ratio=10_000)
    error = refusal(data, tmp_path / "out", limits)
    assert "more than 1 MiB (ARCHIVE_MAX_EXPANDED_MB)" in error.message
    assert written(tmp_path / "out") == MIB // 2  # what came before the limit, no more


def test_more_members_than_the_limit_are_refused_naming_it(tmp_path: Path) -> None:
    data = tar_gz(*(file(f"f{i}.txt", b"") for i in range(11)))
    limits = ArchiveLimits(max_bytes=64 * MIB, max_files=10, max_ratio=10_000)
    error = refusal(data, tmp_path / "out", limits)
    assert "more than 10 files (ARCHIVE_MAX_FILES)" in error.message
    assert len(list((tmp_path / "out").iterdir())) == 10


@pytest.mark.parametrize(
    ("member", "why"),
    [
        (file("../escaped.txt", b"x"), "leaves the archive's folder"),
        (file("/tmp/absolute.txt", b"x"), "leaves the archive's folder"),
        (file("a/../../escaped.txt", b"x"), "leaves the archive's folder"),
        (special("link", tarfile.SYMTYPE, "/etc/passwd"), "points out of"),
        (special("link", tarfile.SYMTYPE, "../../outside"), "points out of"),
        (special("hard", tarfile.LNKTYPE, "../outside"), "points out of"),
        (special("device", tarfile.CHRTYPE), "only files, folders and links"),
        (special("fifo", tarfile.FIFOTYPE), "only files, folders and links"),
    ],
)
def test_members_that_would_leave_the_folder_are_refused(
    tmp_path: Path, member: tuple[tarfile.TarInfo, Any], why: str
) -> None:
    error = refusal(tar_gz(member), tmp_path / "box" / "out")
    assert why in error.message
    assert [p.name for p in (tmp_path / "box").rglob("*")] == ["out"]


def test_a_member_below_a_symbolic_link_of_the_archive_is_refused(tmp_path: Path) -> None:
    # "d" -> "." is inside the folder, but "d/d/../x" would climb out through it on disk.
    data = tar_gz(special("d", tarfile.SYMTYPE, "."), file("d/d/../x", b"x"))
    error = refusal(data, tmp_path / "box" / "out")
    assert "leaves the archive's folder" in error.message or "symbolic link" in error.message
    assert not (tmp_path / "box" / "x").exists()
    through = tar_gz(special("d", tarfile.SYMTYPE, "sub"), file("d/x", b"x"))
    assert "symbolic link of the archive" in refusal(through, tmp_path / "two").message


def test_a_link_inside_the_folder_is_kept(tmp_path: Path) -> None:
    data = tar_gz(file("real.txt", b"hi"), special("alias.txt", tarfile.SYMTYPE, "real.txt"))
    unpack(data, tmp_path / "out")
    assert (tmp_path / "out" / "alias.txt").read_bytes() == b"hi"


def test_garbage_is_refused_as_unreadable(tmp_path: Path) -> None:
    error = refusal(b"\x1f\x8b" + b"not really gzip" * 50, tmp_path / "out")
    assert "is not a readable tar archive" in error.message


def test_the_limits_come_from_the_settings(tmp_path: Path, settings: Any) -> None:
    settings.ARCHIVE_MAX_FILES = 2
    data = tar_gz(*(file(f"f{i}", b"") for i in range(3)))
    with pytest.raises(ArchiveRefused, match="more than 2 files"):
        extract(io.BytesIO(data), tmp_path, archive_size=len(data), label="x", field="f")


def scanned(data: bytes, wanted: str = "", budget: int = 64 * MIB) -> Any:
    return scan(
        io.BytesIO(data),
        archive_size=len(data),
        label="source archive",
        field="source_uri",
        wanted=wanted,
        budget_bytes=budget,
        limits=ROOMY,
    )


def test_a_scan_reads_every_header_and_tells_whether_a_member_is_there() -> None:
    data = tar_gz(file("train.py", b"x"), file("other.py", b"y"))
    assert (scanned(data, "train.py").found, scanned(data, "train.py").complete) == (True, True)
    assert scanned(data, "./train.py").found
    result = scanned(data, "missing.py")
    assert (result.found, result.complete) == (False, True)


def test_a_scan_stops_at_its_budget_without_deciding() -> None:
    data = tar_gz(file("big.bin", bytes(2 * MIB)), file("train.py", b"x"))
    result = scanned(data, "train.py", budget=MIB)
    assert (result.found, result.complete) == (False, False)


def test_a_scan_applies_the_limits_to_the_headers_it_reads() -> None:
    data = tar_gz(file("zeros.bin", bytes(4 * MIB)))
    with pytest.raises(ArchiveRefused, match="ARCHIVE_MAX_RATIO"):
        scan(
            io.BytesIO(data),
            archive_size=len(data),
            label="source archive",
            field="source_uri",
            budget_bytes=64 * MIB,
            limits=ArchiveLimits(max_bytes=64 * MIB, max_files=10, max_ratio=200),
        )
