"""list(): recursive, sorted, and prefixes are folders, on every backend."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from studio.artifacts import ArtifactStore


def _keys(store: ArtifactStore, prefix: str = "") -> list[str]:
    return [info.key for info in store.list(prefix)]


def test_list_of_an_empty_store_is_empty(store: ArtifactStore) -> None:
    assert _keys(store) == []


def test_list_returns_every_object_recursively_sorted_by_key(store: ArtifactStore) -> None:
    # Inserted out of order, with names that sort differently as paths and as strings:
    # "a.txt" < "a/b" < "a0" in plain string order, which is S3's order.
    for key in ["a0", "a/b/c/d", "z", "a/c", "a.txt", "A", "a-b", "a/a"]:
        store.put(key, b"x")

    assert _keys(store) == sorted(["a0", "a/b/c/d", "z", "a/c", "a.txt", "A", "a-b", "a/a"])


def test_list_with_a_prefix_returns_only_that_folder(store: ArtifactStore) -> None:
    for key in ["a/1", "a/sub/2", "ab/3", "a.txt", "b/4"]:
        store.put(key, b"x")

    assert _keys(store, "a/") == ["a/1", "a/sub/2"]


def test_listing_a_does_not_return_ab(store: ArtifactStore) -> None:
    store.put("a/1", b"x")
    store.put("ab/2", b"x")

    assert _keys(store, "a") == ["a/1"]
    assert _keys(store, "a/") == ["a/1"]


def test_listing_runs_1_does_not_return_runs_10(store: ArtifactStore) -> None:
    store.put("runs/1/model.tar.gz", b"x")
    store.put("runs/10/model.tar.gz", b"x")

    assert _keys(store, "runs/1") == ["runs/1/model.tar.gz"]


def test_list_with_a_nested_prefix(store: ArtifactStore) -> None:
    for key in ["x/y/z/1", "x/y/2", "x/3"]:
        store.put(key, b"x")

    assert _keys(store, "x/y") == ["x/y/2", "x/y/z/1"]


def test_list_of_a_missing_folder_is_empty(store: ArtifactStore) -> None:
    store.put("present/1", b"x")

    assert _keys(store, "absent") == []


def test_list_of_an_object_key_as_prefix_is_empty(store: ArtifactStore) -> None:
    store.put("file.txt", b"x")

    assert _keys(store, "file.txt") == []


def test_list_reports_sizes(store: ArtifactStore) -> None:
    store.put("one", b"1")
    store.put("three", b"333")

    assert [(info.key, info.size) for info in store.list()] == [("one", 1), ("three", 3)]


def test_list_returns_an_iterator(store: ArtifactStore) -> None:
    store.put("k", b"x")

    listing = store.list()

    assert next(listing).key == "k"
    assert next(listing, None) is None
