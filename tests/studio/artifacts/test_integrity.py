"""Pinning an artifact's content and checking it while it is read back, on both backends."""

from __future__ import annotations

import hashlib
import io
from typing import TYPE_CHECKING

import pytest

from studio.artifacts.integrity import (
    ArtifactChanged,
    ArtifactPin,
    artifact_label,
    fingerprint,
    open_verified,
)

if TYPE_CHECKING:
    from studio.artifacts import ArtifactStore

CONTENT = b"model weights " * 100_000  # 1.4 MB: more than one read chunk


def pin_of(data: bytes) -> ArtifactPin:
    return ArtifactPin(sha256=hashlib.sha256(data).hexdigest(), size=len(data))


def read_verified(store: ArtifactStore, key: str, pin: ArtifactPin, chunk: int = 65536) -> bytes:
    with open_verified(store, key, pin, owner="package churn/3") as reader:
        data = io.BytesIO()
        while piece := reader.read(chunk):
            data.write(piece)
        reader.finish()
    return data.getvalue()


def test_a_fingerprint_is_the_sha256_and_size_of_the_stored_bytes(store: ArtifactStore) -> None:
    store.put("teams/a/model.tar.gz", CONTENT)
    assert fingerprint(store, "teams/a/model.tar.gz") == pin_of(CONTENT)


def test_the_pinned_content_reads_back_whole(store: ArtifactStore) -> None:
    store.put("teams/a/model.tar.gz", CONTENT)
    assert read_verified(store, "teams/a/model.tar.gz", pin_of(CONTENT)) == CONTENT


def test_content_of_the_same_size_but_other_bytes_is_refused_at_the_end(
    store: ArtifactStore,
) -> None:
    swapped = CONTENT[:-1] + b"X"
    store.put("teams/a/model.tar.gz", swapped)
    with pytest.raises(ArtifactChanged) as error:
        read_verified(store, "teams/a/model.tar.gz", pin_of(CONTENT))
    message = error.value.message
    assert "changed since package churn/3 was registered" in message
    assert f"sha256 {hashlib.sha256(swapped).hexdigest()}" in message
    assert f"expected {pin_of(CONTENT).sha256}" in message
    assert error.value.status == 409


def test_a_stored_size_that_differs_is_refused_before_anything_is_read(
    store: ArtifactStore,
) -> None:
    store.put("teams/a/model.tar.gz", CONTENT + b"more")
    with pytest.raises(ArtifactChanged, match=f"expected {len(CONTENT)}\\)"):
        open_verified(store, "teams/a/model.tar.gz", pin_of(CONTENT), owner="package churn/3")


def test_an_object_growing_during_the_read_is_refused_as_soon_as_it_passes_the_pin(
    store: ArtifactStore,
) -> None:
    store.put("teams/a/model.tar.gz", CONTENT)
    reader = open_verified(store, "teams/a/model.tar.gz", pin_of(CONTENT), owner="package p/1")
    # What a store holding a longer object than it stated would hand out.
    reader._raw = io.BytesIO(CONTENT + b"tail")  # type: ignore[assignment]
    with reader, pytest.raises(ArtifactChanged, match="more than"):
        reader.read()  # reads to the end


def test_errors_name_a_local_artifact_by_its_key_never_by_a_host_path(
    store: ArtifactStore,
) -> None:
    label = artifact_label(store, "teams/a/model.tar.gz")
    if store.uri("teams/a/model.tar.gz").startswith("file:"):
        assert label == "teams/a/model.tar.gz"
    else:
        assert label == store.uri("teams/a/model.tar.gz")
        assert label.startswith("s3://")
