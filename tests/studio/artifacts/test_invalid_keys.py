"""Every operation rejects a bad key with InvalidArtifactKey before touching storage.

`offline_store` is a store where I/O would show: the local one's root does not exist (a
write would create it) and nothing listens at the S3 one's endpoint (a request would raise
ArtifactStoreUnavailable instead).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from studio.artifacts import InvalidArtifactKey, LocalArtifactStore

if TYPE_CHECKING:
    from studio.artifacts import ArtifactStore

BAD_KEYS = {
    "absolute": "/etc/passwd",
    "dotdot": "..",
    "dotdot_segment": "a/../b",
    "climbing_dotdot": "a/../../b",
    "dot_segment": "a/./b",
    "backslash": "a\\b",
    "windows_climb": "..\\..\\b",
    "empty": "",
    "empty_segment": "a//b",
    "trailing_slash": "a/",
    "nul": "a\x00b",
    "newline": "a\nb",
    "escape_sequence": "a\x1b[31mb",
    "too_long": "a/" * 512 + "b",
    "too_long_in_utf8": "é" * 513,
    "long_segment": "a" * 256,
}
# Prefixes may be empty (the whole store, for list) and may end in one slash.
BAD_PREFIXES = {
    name: key for name, key in BAD_KEYS.items() if name not in ("empty", "trailing_slash")
}

KEY_OPERATIONS: dict[str, Callable[[ArtifactStore, str], Any]] = {
    "put": lambda store, key: store.put(key, b"x"),
    "get": lambda store, key: store.get(key),
    "open": lambda store, key: store.open(key),
    "exists": lambda store, key: store.exists(key),
    "stat": lambda store, key: store.stat(key),
    "delete": lambda store, key: store.delete(key),
    "uri": lambda store, key: store.uri(key),
}
PREFIX_OPERATIONS: dict[str, Callable[[ArtifactStore, str], Any]] = {
    "list": lambda store, prefix: store.list(prefix),
    "delete_prefix": lambda store, prefix: store.delete_prefix(prefix),
}


def _assert_untouched(store: ArtifactStore) -> None:
    if isinstance(store, LocalArtifactStore):
        assert not store.root.exists()


@pytest.mark.parametrize("operation", KEY_OPERATIONS.values(), ids=KEY_OPERATIONS.keys())
@pytest.mark.parametrize("key", BAD_KEYS.values(), ids=BAD_KEYS.keys())
def test_bad_key_is_rejected_before_any_io(
    offline_store: ArtifactStore, operation: Callable[[ArtifactStore, str], Any], key: str
) -> None:
    with pytest.raises(InvalidArtifactKey) as raised:
        operation(offline_store, key)

    assert raised.value.field == "key"
    assert raised.value.status == 400
    _assert_untouched(offline_store)


@pytest.mark.parametrize("operation", PREFIX_OPERATIONS.values(), ids=PREFIX_OPERATIONS.keys())
@pytest.mark.parametrize("prefix", BAD_PREFIXES.values(), ids=BAD_PREFIXES.keys())
def test_bad_prefix_is_rejected_before_any_io(
    offline_store: ArtifactStore, operation: Callable[[ArtifactStore, str], Any], prefix: str
) -> None:
    with pytest.raises(InvalidArtifactKey):
        operation(offline_store, prefix)

    _assert_untouched(offline_store)


@pytest.mark.parametrize("key", BAD_KEYS.values(), ids=BAD_KEYS.keys())
def test_bad_key_is_rejected_by_a_working_store_too(store: ArtifactStore, key: str) -> None:
    with pytest.raises(InvalidArtifactKey):
        store.put(key, b"x")

    assert list(store.list()) == []


def test_key_with_dotdot_is_rejected(store: ArtifactStore) -> None:
    with pytest.raises(InvalidArtifactKey, match=r"'\.\.' segment"):
        store.get("a/../../etc/passwd")


def test_key_of_exactly_1024_bytes_is_accepted_by_the_local_store(tmp_path: Path) -> None:
    store = LocalArtifactStore(tmp_path)
    key = "/".join(["x" * 254] * 4) + "/abcd"

    assert len(key.encode()) == 1024
    assert store.put(key, b"x").key == key


def test_reserved_partial_file_names_are_rejected_by_the_local_store(tmp_path: Path) -> None:
    store = LocalArtifactStore(tmp_path)

    with pytest.raises(InvalidArtifactKey, match="reserved"):
        store.put("a/.studiolo-partial-123", b"x")
