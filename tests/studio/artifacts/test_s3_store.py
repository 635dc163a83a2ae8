"""What only the S3 store has to get right: its prefix, multipart, and a dead endpoint."""

from __future__ import annotations

import io
import time
from typing import TYPE_CHECKING

import pytest

from studio.artifacts import (
    ArtifactStoreUnavailable,
    InvalidArtifactKey,
    S3ArtifactStore,
)
from tests.fixtures.s3 import REGION

if TYPE_CHECKING:
    from collections.abc import Callable

    from tests.fixtures.s3 import MotoServer


def test_the_store_only_sees_objects_under_its_prefix(
    s3_store: S3ArtifactStore, moto_server: MotoServer
) -> None:
    client = moto_server.client
    for foreign in ["outside.txt", "some/prefixed/a", "some/other/a", "some/prefix"]:
        client.put_object(Bucket=s3_store.bucket, Key=foreign, Body=b"x")
    s3_store.put("mine", b"x")

    assert [info.key for info in s3_store.list()] == ["mine"]
    assert s3_store.delete_prefix("some") == 0
    assert len(client.list_objects_v2(Bucket=s3_store.bucket)["Contents"]) == 5


def test_objects_are_stored_under_the_prefix(
    s3_store: S3ArtifactStore, moto_server: MotoServer
) -> None:
    s3_store.put("runs/1/model.tar.gz", b"x")

    head = moto_server.client.head_object(
        Bucket=s3_store.bucket, Key="some/prefix/runs/1/model.tar.gz"
    )

    assert head["ContentLength"] == 1


def test_a_large_stream_is_uploaded_in_parts(
    s3_store: S3ArtifactStore, moto_server: MotoServer
) -> None:
    s3_store.put("big.bin", io.BytesIO(b"\x01" * (12 * 1024 * 1024)))

    head = moto_server.client.head_object(Bucket=s3_store.bucket, Key="some/prefix/big.bin")

    # A multipart object's ETag ends in "-<number of parts>".
    assert head["ETag"].strip('"').endswith("-2")


def test_content_type_is_stored_or_guessed(
    s3_store: S3ArtifactStore, moto_server: MotoServer
) -> None:
    client = moto_server.client
    s3_store.put("given", b"{}", content_type="application/json")
    s3_store.put("report.html", b"<p>")
    s3_store.put("model.tar.gz", b"\x1f\x8b")

    def content_type(key: str) -> str:
        head = client.head_object(Bucket=s3_store.bucket, Key=f"some/prefix/{key}")
        return str(head["ContentType"])

    assert content_type("given") == "application/json"
    assert content_type("report.html") == "text/html"
    assert content_type("model.tar.gz") == "application/octet-stream"


def test_folder_markers_and_unaddressable_keys_are_not_listed(
    s3_store: S3ArtifactStore, moto_server: MotoServer
) -> None:
    client = moto_server.client
    for odd in ["some/prefix/folder/", "some/prefix/a//b", "some/prefix/back\\slash"]:
        client.put_object(Bucket=s3_store.bucket, Key=odd, Body=b"")
    s3_store.put("folder/real", b"x")

    assert [info.key for info in s3_store.list()] == ["folder/real"]


def test_delete_prefix_also_deletes_objects_the_store_would_not_list(
    s3_store: S3ArtifactStore, moto_server: MotoServer
) -> None:
    client = moto_server.client
    client.put_object(Bucket=s3_store.bucket, Key="some/prefix/run/a//b", Body=b"")
    s3_store.put("run/ok", b"x")

    assert s3_store.delete_prefix("run") == 2
    assert "Contents" not in client.list_objects_v2(Bucket=s3_store.bucket)


def test_a_key_too_long_once_prefixed_is_rejected(s3_store: S3ArtifactStore) -> None:
    key = "/".join(["x" * 254] * 4) + "/abcd"  # 1,024 bytes: fine alone, not with the prefix

    with pytest.raises(InvalidArtifactKey, match="too long"):
        s3_store.put(key, b"x")


def test_a_store_without_prefix_uses_the_bucket_root(moto_server: MotoServer) -> None:
    client = moto_server.client
    client.create_bucket(Bucket="studiolo-test-no-prefix")
    store = S3ArtifactStore(
        "studiolo-test-no-prefix", endpoint_url=moto_server.endpoint_url, region=REGION
    )

    store.put("a/b", b"x")

    assert store.uri("a/b") == "s3://studiolo-test-no-prefix/a/b"
    assert [info.key for info in store.list()] == ["a/b"]
    assert store.delete_prefix("a") == 1
    client.delete_bucket(Bucket="studiolo-test-no-prefix")


def test_check_fails_quickly_when_nothing_listens(
    unreachable_s3_store: S3ArtifactStore,
) -> None:
    started = time.monotonic()

    with pytest.raises(ArtifactStoreUnavailable, match="is not writable") as raised:
        unreachable_s3_store.check()

    assert time.monotonic() - started < 5
    assert raised.value.status == 503
    assert unreachable_s3_store.endpoint_url is not None
    assert unreachable_s3_store.endpoint_url in raised.value.message


def test_check_fails_for_a_missing_bucket(moto_server: MotoServer) -> None:
    store = S3ArtifactStore(
        "studiolo-no-such-bucket", "p", endpoint_url=moto_server.endpoint_url, region=REGION
    )

    with pytest.raises(ArtifactStoreUnavailable, match="NoSuchBucket"):
        store.check()


@pytest.mark.parametrize(
    "operation",
    [
        lambda store: store.put("k", b"x"),
        lambda store: store.put("k", io.BytesIO(b"x" * 10 * 1024 * 1024)),
        lambda store: store.get("k"),
        lambda store: store.open("k"),
        lambda store: store.exists("k"),
        lambda store: store.stat("k"),
        lambda store: store.delete("k"),
        lambda store: list(store.list()),
        lambda store: store.delete_prefix("k"),
    ],
    ids=["put", "put_stream", "get", "open", "exists", "stat", "delete", "list", "delete_prefix"],
)
def test_every_operation_on_an_unreachable_endpoint_is_unavailable(
    unreachable_s3_store: S3ArtifactStore, operation: Callable[[S3ArtifactStore], object]
) -> None:
    with pytest.raises(ArtifactStoreUnavailable):
        operation(unreachable_s3_store)


@pytest.mark.parametrize(
    ("bucket", "prefix"),
    [("", "p"), ("a/b", "p"), ("bucket", "a/../b"), ("bucket", "a//b")],
)
def test_a_bad_bucket_or_prefix_is_a_configuration_error(bucket: str, prefix: str) -> None:
    with pytest.raises(ValueError, match="invalid S3"):
        S3ArtifactStore(bucket, prefix)
