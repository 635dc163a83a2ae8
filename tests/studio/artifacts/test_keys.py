"""validate_key and validate_prefix: the rules every store applies."""

from __future__ import annotations

import pytest

from studio.artifacts import (
    ArtifactNotFound,
    ArtifactStoreError,
    ArtifactStoreUnavailable,
    InvalidArtifactKey,
    validate_key,
    validate_prefix,
)
from studio.errors import NotFound, Unavailable, ValidationError


@pytest.mark.parametrize(
    "key",
    ["a", "a/b/c.txt", "model.tar.gz", ".hidden", "a/.b/c", "...", "a..b", "with space", "é/ü"],
)
def test_ordinary_keys_are_accepted_unchanged(key: str) -> None:
    assert validate_key(key) == key


def test_key_is_normalised_to_composed_unicode() -> None:
    assert validate_key("cafe\u0301") == "caf\u00e9"


@pytest.mark.parametrize(
    ("key", "reason"),
    [
        ("", "empty"),
        ("/a", "absolute"),
        ("..", "'..' segment"),
        ("a/../../b", "'..' segment"),
        ("./a", "'.' segment"),
        ("a\\b", "backslash"),
        ("a//b", "empty path segment"),
        ("a/", "empty path segment"),
        ("a\x00b", "control character"),
        ("a\x7fb", "control character"),
        ("a\x85b", "control character"),
        ("a\ud800b", "not valid Unicode"),
        ("x" * 1025, "1025 bytes long"),
        ("a/" + "x" * 256, "longer than 255 bytes"),
    ],
)
def test_bad_key_is_rejected_with_the_reason(key: str, reason: str) -> None:
    with pytest.raises(InvalidArtifactKey, match=reason):
        validate_key(key)


def test_key_with_dotdot_is_rejected() -> None:
    with pytest.raises(InvalidArtifactKey, match=r"'a/\.\./b'"):
        validate_key("a/../b")


def test_a_key_that_is_not_a_string_is_rejected() -> None:
    with pytest.raises(InvalidArtifactKey, match="string"):
        validate_key(b"a")  # type: ignore[arg-type]


def test_a_key_of_1024_bytes_is_the_limit() -> None:
    key = "/".join(["x" * 254] * 4) + "/abcd"

    assert len(key.encode()) == 1024
    assert validate_key(key) == key
    with pytest.raises(InvalidArtifactKey):
        validate_key(key + "e")


@pytest.mark.parametrize(
    ("prefix", "normalised"), [("", ""), ("a", "a"), ("a/", "a"), ("a/b/", "a/b")]
)
def test_prefix_is_a_folder_with_an_optional_trailing_slash(prefix: str, normalised: str) -> None:
    assert validate_prefix(prefix) == normalised


@pytest.mark.parametrize("prefix", ["/", "a//", "/a", "..", "a/../"])
def test_bad_prefix_is_rejected_and_named_as_a_prefix(prefix: str) -> None:
    with pytest.raises(InvalidArtifactKey, match="artifact prefix") as raised:
        validate_prefix(prefix)

    assert raised.value.field == "prefix"


def test_an_empty_prefix_can_be_refused() -> None:
    with pytest.raises(InvalidArtifactKey, match="whole store"):
        validate_prefix("", allow_empty=False)


def test_errors_are_the_projects_domain_errors() -> None:
    invalid = InvalidArtifactKey("bad")
    assert isinstance(invalid, ValidationError)
    assert isinstance(invalid, ArtifactStoreError)
    assert (invalid.code, invalid.status, invalid.field) == ("invalid", 400, "key")

    missing = ArtifactNotFound("gone")
    assert isinstance(missing, NotFound)
    assert isinstance(missing, ArtifactStoreError)
    assert (missing.code, missing.status) == ("not_found", 404)

    down = ArtifactStoreUnavailable("down")
    assert isinstance(down, Unavailable)
    assert isinstance(down, ArtifactStoreError)
    assert (down.code, down.status) == ("unavailable", 503)
