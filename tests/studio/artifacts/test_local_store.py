"""What only the local folder store has to get right: containment, atomicity, the disk."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from studio.artifacts import (
    ArtifactStoreUnavailable,
    InvalidArtifactKey,
    LocalArtifactStore,
)
from studio.artifacts.local import PARTIAL_PREFIX


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "store"


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    folder = tmp_path / "outside"
    folder.mkdir()
    (folder / "secret.txt").write_bytes(b"secret")
    return folder


@pytest.fixture
def store_with_escaping_links(root: Path, outside: Path) -> LocalArtifactStore:
    """A store whose folder holds a link to a folder and a link to a file outside it."""
    root.mkdir()
    (root / "escape").symlink_to(outside, target_is_directory=True)
    (root / "secret-link").symlink_to(outside / "secret.txt")
    (root / "kept.txt").write_bytes(b"kept")
    return LocalArtifactStore(root)


def test_symlink_escaping_the_root_is_refused_for_reads(
    store_with_escaping_links: LocalArtifactStore,
) -> None:
    store = store_with_escaping_links

    for key in ["escape/secret.txt", "secret-link"]:
        with pytest.raises(InvalidArtifactKey, match="outside the store root"):
            store.get(key)
        with pytest.raises(InvalidArtifactKey):
            store.open(key)
        with pytest.raises(InvalidArtifactKey):
            store.stat(key)
        with pytest.raises(InvalidArtifactKey):
            store.exists(key)


def test_symlink_escaping_the_root_is_refused_for_writes(
    store_with_escaping_links: LocalArtifactStore, outside: Path
) -> None:
    store = store_with_escaping_links

    with pytest.raises(InvalidArtifactKey):
        store.put("escape/planted.txt", b"x")
    with pytest.raises(InvalidArtifactKey):
        store.put("escape/new/deeper.txt", b"x")
    with pytest.raises(InvalidArtifactKey):
        store.delete("escape/secret.txt")
    with pytest.raises(InvalidArtifactKey):
        store.delete_prefix("escape")
    with pytest.raises(InvalidArtifactKey):
        store.list("escape")

    assert sorted(p.name for p in outside.iterdir()) == ["secret.txt"]
    assert (outside / "secret.txt").read_bytes() == b"secret"


def test_listing_skips_symlinks(store_with_escaping_links: LocalArtifactStore) -> None:
    assert [info.key for info in store_with_escaping_links.list()] == ["kept.txt"]


def test_put_over_a_symlink_replaces_the_link_not_its_target(
    store_with_escaping_links: LocalArtifactStore, outside: Path
) -> None:
    store = store_with_escaping_links

    store.put("secret-link", b"replaced")

    assert store.get("secret-link") == b"replaced"
    assert (outside / "secret.txt").read_bytes() == b"secret"


def test_delete_of_a_symlink_removes_the_link_not_its_target(
    store_with_escaping_links: LocalArtifactStore, outside: Path
) -> None:
    store_with_escaping_links.delete("secret-link")

    assert not (store_with_escaping_links.root / "secret-link").is_symlink()
    assert (outside / "secret.txt").read_bytes() == b"secret"


def test_a_symlink_to_a_file_inside_the_root_can_be_read(root: Path) -> None:
    store = LocalArtifactStore(root)
    store.put("real/data.csv", b"1,2")
    (root / "alias.csv").symlink_to(root / "real" / "data.csv")

    assert store.get("alias.csv") == b"1,2"


def test_a_root_that_is_itself_a_symlink_works(tmp_path: Path) -> None:
    (tmp_path / "disk").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "disk", target_is_directory=True)
    store = LocalArtifactStore(tmp_path / "link")

    store.put("a/b", b"x")

    assert (tmp_path / "disk" / "a" / "b").read_bytes() == b"x"
    assert store.get("a/b") == b"x"


def test_put_creates_parent_folders(root: Path) -> None:
    LocalArtifactStore(root).put("a/b/c/d.txt", b"x")

    assert (root / "a" / "b" / "c" / "d.txt").read_bytes() == b"x"


def test_put_leaves_no_partial_file_behind(root: Path) -> None:
    store = LocalArtifactStore(root)

    store.put("a/b.txt", b"x")

    assert sorted(p.name for p in (root / "a").iterdir()) == ["b.txt"]


def test_a_failed_write_keeps_the_old_content_and_leaves_no_partial_file(root: Path) -> None:
    store = LocalArtifactStore(root)
    store.put("model.bin", b"old")

    class BrokenStream:
        def read(self, size: int = -1) -> bytes:
            raise ConnectionResetError("client went away")

    # The caller's own error, unchanged: a client hanging up is not a storage outage.
    with pytest.raises(ConnectionResetError):
        store.put("model.bin", BrokenStream())  # type: ignore[arg-type]

    assert store.get("model.bin") == b"old"
    assert sorted(p.name for p in root.iterdir()) == ["model.bin"]


def test_partial_files_of_writes_in_flight_are_not_listed(root: Path) -> None:
    store = LocalArtifactStore(root)
    store.put("a/done", b"x")
    (root / "a" / f"{PARTIAL_PREFIX}abc").write_bytes(b"half")

    assert [info.key for info in store.list()] == ["a/done"]


def test_written_files_honour_the_umask(root: Path) -> None:
    store = LocalArtifactStore(root)
    previous = os.umask(0o022)
    try:
        store.put("f", b"x")
    finally:
        os.umask(previous)

    assert (root / "f").stat().st_mode & 0o777 == 0o644


def test_deleting_the_last_object_of_a_folder_removes_the_empty_folders(root: Path) -> None:
    store = LocalArtifactStore(root)
    store.put("a/b/c/d", b"x")
    store.put("a/keep", b"x")

    store.delete("a/b/c/d")

    assert sorted(p.name for p in (root / "a").iterdir()) == ["keep"]
    assert root.is_dir()


def test_delete_prefix_removes_the_folder_itself(root: Path) -> None:
    store = LocalArtifactStore(root)
    store.put("runs/1/a", b"x")
    store.put("runs/1/b/c", b"x")

    assert store.delete_prefix("runs/1") == 2
    assert not (root / "runs").exists()
    assert root.is_dir()


def test_put_under_an_object_is_a_clear_error(root: Path) -> None:
    store = LocalArtifactStore(root)
    store.put("a", b"x")

    with pytest.raises(InvalidArtifactKey, match="is an object"):
        store.put("a/b", b"y")


def test_put_onto_a_folder_is_a_clear_error(root: Path) -> None:
    store = LocalArtifactStore(root)
    store.put("a/b", b"x")

    with pytest.raises(InvalidArtifactKey, match="is a folder"):
        store.put("a", b"y")


def test_check_creates_a_missing_root(root: Path) -> None:
    LocalArtifactStore(root).check()

    assert root.is_dir()
    assert list(root.iterdir()) == []


def test_check_fails_when_the_root_cannot_be_created(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_bytes(b"")
    store = LocalArtifactStore(tmp_path / "a-file" / "store")

    with pytest.raises(ArtifactStoreUnavailable, match="is not writable") as raised:
        store.check()

    assert raised.value.status == 503
    assert "\n" not in raised.value.message


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through file permissions")
def test_check_fails_for_a_read_only_root(root: Path) -> None:
    root.mkdir()
    root.chmod(0o500)
    try:
        with pytest.raises(ArtifactStoreUnavailable, match="Permission denied"):
            LocalArtifactStore(root).check()
    finally:
        root.chmod(0o700)


def test_a_root_that_is_a_file_makes_the_store_unavailable(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_bytes(b"")
    store = LocalArtifactStore(tmp_path / "a-file")

    with pytest.raises(ArtifactStoreUnavailable):
        store.put("a/b", b"x")
    with pytest.raises(ArtifactStoreUnavailable):
        next(store.list())
