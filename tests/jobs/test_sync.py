"""jobs.sync: a folder kept alike with a prefix of the store (checkpoints, Continuous outputs),
against both store backends."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from jobs.sync import FolderSync, SyncPass, folder_restore
from studio.artifacts import ArtifactStore, LocalArtifactStore
from tests.fixtures.s3 import (
    moto_server,  # noqa: F401 - a fixture, used by s3_store
    s3_store,  # noqa: F401 - a fixture, used by store
)

PREFIX = "teams/lab/checkpoints/run-1"


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ArtifactStore:
    if request.param == "local":
        return LocalArtifactStore(tmp_path / "store")
    s3: ArtifactStore = request.getfixturevalue("s3_store")
    return s3


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    path = tmp_path / "checkpoints"
    path.mkdir()
    return path


def stored(store: ArtifactStore) -> dict[str, bytes]:
    prefix = PREFIX + "/"
    return {info.key[len(prefix) :]: store.get(info.key) for info in store.list(prefix)}


def write(path: Path, data: bytes, *, mtime_offset: float = 0.0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    if mtime_offset:
        moment = time.time() + mtime_offset
        os.utime(path, (moment, moment))


def wait_until(condition: Callable[[], bool], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def test_a_new_file_is_uploaded_once_two_scans_see_it_unchanged(
    store: ArtifactStore, folder: Path
) -> None:
    sync = FolderSync(store, PREFIX, folder, interval=3600)
    write(folder / "epoch-1.pt", b"weights-1")
    write(folder / "nested" / "state.json", b"{}")
    assert not sync.sync_once()  # first sight: perhaps still being written
    assert stored(store) == {}
    assert sync.sync_once() == SyncPass(files=2, bytes=11)
    assert stored(store) == {"epoch-1.pt": b"weights-1", "nested/state.json": b"{}"}


def test_an_unchanged_file_is_not_uploaded_again(store: ArtifactStore, folder: Path) -> None:
    sync = FolderSync(store, PREFIX, folder, interval=3600)
    write(folder / "epoch-1.pt", b"weights-1")
    sync.sync_once()
    sync.sync_once()
    assert not sync.sync_once()
    assert not sync.sync_once()
    assert sync.totals == SyncPass(files=1, bytes=9)


def test_a_changed_file_is_uploaded_again_once_it_settles(
    store: ArtifactStore, folder: Path
) -> None:
    sync = FolderSync(store, PREFIX, folder, interval=3600)
    write(folder / "last.pt", b"epoch 1")
    sync.sync_once()
    sync.sync_once()
    write(folder / "last.pt", b"epoch 2 weights", mtime_offset=5)
    assert not sync.sync_once()  # changed since the last scan: maybe half-written
    assert stored(store) == {"last.pt": b"epoch 1"}
    assert sync.sync_once() == SyncPass(files=1, bytes=15)
    assert stored(store) == {"last.pt": b"epoch 2 weights"}


def test_a_file_replaced_by_a_rename_is_uploaded_at_once(
    store: ArtifactStore, folder: Path
) -> None:
    """Write-then-rename: complete when it appears, even when rewritten every scan."""
    sync = FolderSync(store, PREFIX, folder, interval=3600)
    state = folder / "state.json"
    for epoch in range(1, 4):
        write(folder / "state.json.tmp", f'{{"epoch": {epoch}}}'.encode())
        os.replace(folder / "state.json.tmp", state)
        done = sync.sync_once()
        if epoch > 1:  # the first scan only sees it appear
            assert done == SyncPass(files=1, bytes=12)
            assert stored(store) == {"state.json": f'{{"epoch": {epoch}}}'.encode()}


def test_a_file_still_growing_is_never_uploaded_half_written(
    store: ArtifactStore, folder: Path
) -> None:
    sync = FolderSync(store, PREFIX, folder, interval=3600)
    partial = folder / "big.pt"
    with open(partial, "wb") as stream:
        for chunk in range(5):
            stream.write(b"x" * 1000)
            stream.flush()
            sync.sync_once()
            assert stored(store) == {}, f"uploaded after chunk {chunk}"
    sync.sync_once()
    sync.sync_once()
    assert stored(store) == {"big.pt": b"x" * 5000}


def test_the_final_pass_uploads_every_change_without_waiting(
    store: ArtifactStore, folder: Path
) -> None:
    sync = FolderSync(store, PREFIX, folder, interval=3600)
    sync.start()
    write(folder / "saved-on-sigterm.pt", b"last words")
    totals = sync.stop()
    assert stored(store) == {"saved-on-sigterm.pt": b"last words"}
    assert totals == SyncPass(files=1, bytes=10)


def test_the_thread_syncs_every_interval_and_reports_each_pass(
    store: ArtifactStore, folder: Path
) -> None:
    passes: list[SyncPass] = []
    sync = FolderSync(store, PREFIX, folder, interval=0.1, on_pass=passes.append)
    sync.start()
    try:
        write(folder / "epoch-1.pt", b"one")
        wait_until(lambda: stored(store) == {"epoch-1.pt": b"one"})
        write(folder / "epoch-2.pt", b"two")
        wait_until(lambda: "epoch-2.pt" in stored(store))
    finally:
        sync.stop()
    assert passes == [SyncPass(files=1, bytes=3), SyncPass(files=1, bytes=3)]


def test_a_file_deleted_in_the_folder_is_deleted_in_the_store(
    store: ArtifactStore, folder: Path
) -> None:
    """As the SageMaker Developer Guide says of checkpoints."""
    store.put(PREFIX + "/written-by-algo-2.pt", b"other host")  # never in this folder
    sync = FolderSync(store, PREFIX, folder, interval=3600)
    write(folder / "epoch-1.pt", b"one")
    write(folder / "epoch-2.pt", b"two")
    sync.sync_once()
    sync.sync_once()
    (folder / "epoch-1.pt").unlink()
    assert not sync.sync_once()  # once missing: perhaps the folder is being removed whole
    assert sync.sync_once() == SyncPass(deleted=1)
    assert stored(store) == {"epoch-2.pt": b"two", "written-by-algo-2.pt": b"other host"}
    (folder / "epoch-2.pt").unlink()
    assert sync.stop() == SyncPass(files=2, bytes=6, deleted=2)  # the last pass: at once
    assert stored(store) == {"written-by-algo-2.pt": b"other host"}


def test_a_folder_removed_whole_deletes_nothing_in_the_store(
    store: ArtifactStore, folder: Path
) -> None:
    sync = FolderSync(store, PREFIX, folder, interval=3600)
    write(folder / "epoch-1.pt", b"one")
    sync.sync_once()
    sync.sync_once()
    (folder / "epoch-1.pt").unlink()
    assert sync.sync_once() == SyncPass()  # a clean-up half-way
    folder.rmdir()
    assert sync.sync_once() == SyncPass()
    assert stored(store) == {"epoch-1.pt": b"one"}


def test_without_mirror_deletes_a_deleted_file_stays_in_the_store(
    store: ArtifactStore, folder: Path
) -> None:
    sync = FolderSync(store, PREFIX, folder, interval=3600, mirror_deletes=False)
    write(folder / "part-0.csv", b"a,b")
    sync.sync_once()
    sync.sync_once()
    (folder / "part-0.csv").unlink()
    assert sync.stop() == SyncPass(files=1, bytes=3)  # totals: nothing deleted
    assert stored(store) == {"part-0.csv": b"a,b"}


def test_restore_brings_every_object_and_the_sync_does_not_upload_them_back(
    store: ArtifactStore, folder: Path
) -> None:
    store.put(PREFIX + "/epoch-3.pt", b"three")
    store.put(PREFIX + "/optim/state.bin", b"\x00" * 2048)
    store.put(PREFIX + "-other/not-mine.pt", b"a sibling prefix")
    assert folder_restore(store, PREFIX, folder) == (2, 2053)
    assert (folder / "epoch-3.pt").read_bytes() == b"three"
    assert (folder / "optim" / "state.bin").read_bytes() == b"\x00" * 2048
    assert not (folder / "not-mine.pt").exists()
    assert [p.name for p in folder.rglob(".restore-*")] == []

    sync = FolderSync(store, PREFIX, folder, interval=3600)
    sync.start()
    assert sync.stop() == SyncPass()  # in place already: nothing uploaded back
    assert sync.sync_once() == SyncPass()


def test_restore_of_an_empty_prefix_gives_an_empty_folder(
    store: ArtifactStore, tmp_path: Path
) -> None:
    assert folder_restore(store, PREFIX, tmp_path / "fresh") == (0, 0)
    assert list((tmp_path / "fresh").iterdir()) == []


def test_a_restored_file_the_job_rewrites_is_uploaded(store: ArtifactStore, folder: Path) -> None:
    store.put(PREFIX + "/last.pt", b"epoch 3")
    folder_restore(store, PREFIX, folder)
    sync = FolderSync(store, PREFIX, folder, interval=3600)
    sync.start()
    write(folder / "last.pt", b"epoch 4", mtime_offset=5)  # same size, later
    assert sync.stop() == SyncPass(files=1, bytes=7)
    assert stored(store) == {"last.pt": b"epoch 4"}


def test_symbolic_links_in_the_folder_are_not_followed(
    store: ArtifactStore, folder: Path, tmp_path: Path
) -> None:
    secret = tmp_path / "host-secret"
    secret.write_bytes(b"the worker's file")
    (tmp_path / "host-dir").mkdir()
    (tmp_path / "host-dir" / "inside").write_bytes(b"also the worker's")
    os.symlink(secret, folder / "link.pt")
    os.symlink(tmp_path / "host-dir", folder / "linked-dir")
    write(folder / "real.pt", b"ok")
    sync = FolderSync(store, PREFIX, folder, interval=3600)
    sync.start()
    sync.stop()
    assert stored(store) == {"real.pt": b"ok"}


def test_a_folder_swapped_for_a_link_while_syncing_is_not_followed(
    store: ArtifactStore, folder: Path, tmp_path: Path
) -> None:
    (tmp_path / "host-dir").mkdir()
    (tmp_path / "host-dir" / "model.pt").write_bytes(b"the worker's")
    write(folder / "sub" / "model.pt", b"mine")
    sync = FolderSync(store, PREFIX, folder, interval=3600)
    sync.sync_once()
    # Between the scan and the upload, the container replaces the folder with a link.
    (folder / "sub" / "model.pt").unlink()
    (folder / "sub").rmdir()
    os.symlink(tmp_path / "host-dir", folder / "sub")
    assert sync._upload("sub/model.pt", sync._last_scan["sub/model.pt"]) is None
    assert stored(store) == {}


def test_a_store_failure_in_a_periodic_pass_is_reported_and_retried(
    folder: Path, tmp_path: Path
) -> None:
    store = LocalArtifactStore(tmp_path / "store")
    failures: list[str] = []
    failed_once = threading.Event()
    real_put = store.put

    def flaky_put(*args, **kwargs):  # type: ignore[no-untyped-def]
        if not failed_once.is_set():
            failed_once.set()
            from studio.artifacts.errors import ArtifactStoreUnavailable

            raise ArtifactStoreUnavailable("store away")
        return real_put(*args, **kwargs)

    store.put = flaky_put  # type: ignore[method-assign]
    sync = FolderSync(
        store, PREFIX, folder, interval=0.1, on_error=lambda exc: failures.append(exc.message)
    )
    write(folder / "epoch-1.pt", b"one")
    sync.start()
    try:
        wait_until(lambda: stored(store) == {"epoch-1.pt": b"one"})
    finally:
        sync.stop()
    assert failures == ["store away"]
