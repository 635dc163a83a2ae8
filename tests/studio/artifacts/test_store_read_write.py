"""put, get, open, stat and exists, identical on every backend."""

from __future__ import annotations

import hashlib
import io
import random
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import pytest

from studio.artifacts import ArtifactNotFound, ObjectInfo

if TYPE_CHECKING:
    from studio.artifacts import ArtifactStore

MULTI_MB = 12 * 1024 * 1024  # Past S3's 8 MiB multipart threshold: two parts.


def _payload(size: int) -> bytes:
    return random.Random(size).randbytes(size)  # noqa: S311 - test data, not secrets


def test_put_bytes_then_get_returns_the_same_bytes(store: ArtifactStore) -> None:
    store.put("runs/1/metrics.json", b'{"loss": 0.1}', content_type="application/json")

    assert store.get("runs/1/metrics.json") == b'{"loss": 0.1}'


def test_put_returns_the_object_info(store: ArtifactStore) -> None:
    before = datetime.now(tz=UTC) - timedelta(seconds=5)

    info = store.put("a/b.txt", b"hello")

    assert info.key == "a/b.txt"
    assert info.size == 5
    assert info.last_modified.tzinfo is not None
    assert before <= info.last_modified <= datetime.now(tz=UTC) + timedelta(seconds=5)


def test_put_of_an_empty_object_works(store: ArtifactStore) -> None:
    store.put("empty", b"")

    assert store.get("empty") == b""
    assert store.stat("empty").size == 0


def test_put_replaces_an_existing_object(store: ArtifactStore) -> None:
    store.put("model.tar.gz", b"old content, longer")
    store.put("model.tar.gz", b"new")

    assert store.get("model.tar.gz") == b"new"
    assert [info.key for info in store.list()] == ["model.tar.gz"]


def test_a_multi_megabyte_stream_round_trips_through_open_in_chunks(
    store: ArtifactStore,
) -> None:
    payload = _payload(MULTI_MB)

    info = store.put("big/model.bin", io.BytesIO(payload))

    assert info.size == MULTI_MB
    digest = hashlib.sha256()
    chunks = 0
    with store.open("big/model.bin") as stream:
        while chunk := stream.read(1024 * 1024):
            digest.update(chunk)
            chunks += 1
    assert digest.hexdigest() == hashlib.sha256(payload).hexdigest()
    assert chunks >= 12


def test_put_of_a_stream_starts_at_its_current_position(store: ArtifactStore) -> None:
    stream = io.BytesIO(b"header:body")
    stream.seek(len(b"header:"))

    store.put("k", stream)

    assert store.get("k") == b"body"


def test_put_accepts_large_bytes(store: ArtifactStore) -> None:
    payload = _payload(MULTI_MB)

    store.put("big.bin", payload)

    assert store.get("big.bin") == payload


def test_open_reads_the_whole_object_with_read(store: ArtifactStore) -> None:
    store.put("x/y", b"0123456789")

    with store.open("x/y") as stream:
        assert stream.read(3) == b"012"
        assert stream.read() == b"3456789"
        assert stream.read() == b""


def test_open_returns_a_file_that_can_be_closed_early(store: ArtifactStore) -> None:
    store.put("big.bin", _payload(2 * 1024 * 1024))

    stream = store.open("big.bin")
    assert len(stream.read(10)) == 10
    stream.close()

    assert stream.closed


def test_get_of_a_missing_key_raises_not_found(store: ArtifactStore) -> None:
    with pytest.raises(ArtifactNotFound, match="nope/missing"):
        store.get("nope/missing")


def test_open_of_a_missing_key_raises_not_found(store: ArtifactStore) -> None:
    with pytest.raises(ArtifactNotFound):
        store.open("missing")


def test_stat_of_a_missing_key_raises_not_found(store: ArtifactStore) -> None:
    with pytest.raises(ArtifactNotFound):
        store.stat("missing")


def test_a_folder_is_not_an_object(store: ArtifactStore) -> None:
    store.put("folder/file", b"x")

    assert not store.exists("folder")
    with pytest.raises(ArtifactNotFound):
        store.get("folder")
    with pytest.raises(ArtifactNotFound):
        store.stat("folder")


def test_exists_is_true_only_for_stored_objects(store: ArtifactStore) -> None:
    store.put("present", b"x")

    assert store.exists("present")
    assert not store.exists("absent")


def test_stat_reports_size_and_matches_the_listing(store: ArtifactStore) -> None:
    store.put("s/t", b"12345")

    info = store.stat("s/t")

    assert info == ObjectInfo(key="s/t", size=5, last_modified=info.last_modified)
    assert list(store.list()) == [info]


def test_keys_are_unicode_normalised_so_one_name_is_one_object(store: ArtifactStore) -> None:
    decomposed = "cafe\u0301.txt"  # "café" as macOS spells it
    composed = "caf\u00e9.txt"

    info = store.put(decomposed, b"x")

    assert info.key == composed
    assert store.get(composed) == b"x"
    assert [i.key for i in store.list()] == [composed]


def test_check_passes_on_a_working_store(store: ArtifactStore) -> None:
    store.check()

    assert list(store.list()) == []  # The probe leaves nothing behind.
