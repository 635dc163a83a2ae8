"""delete and delete_prefix, identical on every backend."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from studio.artifacts import InvalidArtifactKey

if TYPE_CHECKING:
    from studio.artifacts import ArtifactStore


def _keys(store: ArtifactStore) -> list[str]:
    return [info.key for info in store.list()]


def test_delete_removes_the_object(store: ArtifactStore) -> None:
    store.put("a/b", b"x")
    store.put("a/c", b"x")

    store.delete("a/b")

    assert not store.exists("a/b")
    assert _keys(store) == ["a/c"]


def test_delete_is_idempotent(store: ArtifactStore) -> None:
    store.put("a/b", b"x")

    store.delete("a/b")
    store.delete("a/b")
    store.delete("never/existed")

    assert _keys(store) == []


def test_delete_of_a_folder_key_deletes_nothing(store: ArtifactStore) -> None:
    store.put("folder/file", b"x")

    store.delete("folder")

    assert _keys(store) == ["folder/file"]


def test_a_key_can_be_written_again_after_its_folder_emptied(store: ArtifactStore) -> None:
    store.put("a/b/c", b"x")
    store.delete("a/b/c")

    store.put("a/b/c", b"y")

    assert store.get("a/b/c") == b"y"


def test_delete_prefix_deletes_the_folder_and_counts(store: ArtifactStore) -> None:
    for key in ["runs/1/model.tar.gz", "runs/1/logs/out.txt", "runs/1/logs/err.txt"]:
        store.put(key, b"x")
    store.put("runs/10/model.tar.gz", b"x")
    store.put("runs/1.txt", b"x")

    deleted = store.delete_prefix("runs/1")

    assert deleted == 3
    assert _keys(store) == ["runs/1.txt", "runs/10/model.tar.gz"]


def test_delete_prefix_accepts_a_trailing_slash(store: ArtifactStore) -> None:
    store.put("a/1", b"x")
    store.put("ab/1", b"x")

    assert store.delete_prefix("a/") == 1
    assert _keys(store) == ["ab/1"]


def test_delete_prefix_of_a_missing_folder_deletes_nothing(store: ArtifactStore) -> None:
    store.put("kept", b"x")

    assert store.delete_prefix("absent") == 0
    assert _keys(store) == ["kept"]


def test_delete_prefix_handles_more_than_one_batch(
    store: ArtifactStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    # S3 deletes at most 1,000 keys per request; a batch of 10 exercises the same paging
    # without writing thousands of objects.
    monkeypatch.setattr("studio.artifacts.s3._DELETE_BATCH", 10)
    for index in range(25):
        store.put(f"many/{index:02d}", b"")
    store.put("other", b"")

    assert store.delete_prefix("many") == 25
    assert _keys(store) == ["other"]


def test_delete_prefix_refuses_to_wipe_the_whole_store(store: ArtifactStore) -> None:
    store.put("kept", b"x")

    with pytest.raises(InvalidArtifactKey, match="whole store"):
        store.delete_prefix("")

    assert _keys(store) == ["kept"]
