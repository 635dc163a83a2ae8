"""uri, key_from_uri and describe."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from studio.artifacts import InvalidArtifactKey, LocalArtifactStore, S3ArtifactStore

if TYPE_CHECKING:
    from pathlib import Path

    from studio.artifacts import ArtifactStore


def test_uri_and_key_from_uri_round_trip(store: ArtifactStore) -> None:
    for key in ["model.tar.gz", "runs/42/output/data.csv", "with space/é.txt"]:
        assert store.key_from_uri(store.uri(key)) == key


def test_uri_does_not_need_the_object_to_exist(store: ArtifactStore) -> None:
    assert store.uri("not/yet").endswith("/not/yet")
    assert not store.exists("not/yet")


def test_local_uri_is_a_file_uri_under_the_absolute_root(tmp_path: Path) -> None:
    store = LocalArtifactStore(tmp_path / "store")

    assert store.uri("a/b.txt") == f"file://{(tmp_path / 'store').resolve()}/a/b.txt"


def test_s3_uri_includes_bucket_and_prefix() -> None:
    store = S3ArtifactStore("bucket", "some/prefix")

    assert store.uri("a/b.txt") == "s3://bucket/some/prefix/a/b.txt"
    assert S3ArtifactStore("bucket").uri("a") == "s3://bucket/a"


def test_key_from_uri_rejects_a_uri_of_another_local_root(tmp_path: Path) -> None:
    store = LocalArtifactStore(tmp_path / "store")
    other = LocalArtifactStore(tmp_path / "store-other")

    with pytest.raises(InvalidArtifactKey, match="not inside"):
        store.key_from_uri(other.uri("a"))


@pytest.mark.parametrize(
    "uri",
    [
        "s3://other-bucket/some/prefix/a",
        "s3://bucket/some/prefixed/a",
        "s3://bucket/some/a",
        "s3://bucket/some/prefix",
        "s3://bucket/some/prefix/",
        "s3://bucket/some/prefix/../../a",
        "file:///some/prefix/a",
        "https://bucket.s3.amazonaws.com/some/prefix/a",
        "",
    ],
)
def test_key_from_uri_rejects_uris_outside_the_s3_store(uri: str) -> None:
    store = S3ArtifactStore("bucket", "some/prefix")

    with pytest.raises(InvalidArtifactKey):
        store.key_from_uri(uri)


@pytest.mark.parametrize("suffix", ["", "/", "/../outside", "/a//b", "-sibling/a", "/a/../../x"])
def test_key_from_uri_rejects_uris_outside_the_local_store(tmp_path: Path, suffix: str) -> None:
    store = LocalArtifactStore(tmp_path / "store")

    with pytest.raises(InvalidArtifactKey):
        store.key_from_uri(f"file://{store.root}{suffix}")


def test_key_from_uri_rejects_a_foreign_scheme(store: ArtifactStore) -> None:
    foreign = "file:///elsewhere/a" if store.uri("a").startswith("s3://") else "s3://b/a"

    with pytest.raises(InvalidArtifactKey) as raised:
        store.key_from_uri(foreign)

    assert raised.value.field == "uri"


def test_describe_names_where_objects_go(tmp_path: Path) -> None:
    assert LocalArtifactStore(tmp_path).describe() == f"local:{tmp_path.resolve()}"
    s3 = S3ArtifactStore("bucket", "pre/fix", endpoint_url="http://127.0.0.1:5000")
    assert s3.describe() == "s3://bucket/pre/fix at http://127.0.0.1:5000"
    assert S3ArtifactStore("bucket").describe() == "s3://bucket"
