"""Signed download links: sign_download and verify_download."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qsl

import pytest

from studio.artifacts import InvalidArtifactKey, sign_download, verify_download
from studio.errors import PermissionDenied

SECRET = "not-a-real-secret"  # noqa: S105 - a test key, signs nothing real
NOW = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)


def _params(query: str) -> dict[str, str]:
    return dict(parse_qsl(query, keep_blank_values=True))


def test_a_fresh_link_verifies_to_its_key() -> None:
    query = sign_download("runs/1/model.tar.gz", secret=SECRET, now=NOW)

    assert verify_download(_params(query), secret=SECRET, now=NOW) == "runs/1/model.tar.gz"


def test_the_query_string_carries_key_expiry_and_signature() -> None:
    params = _params(sign_download("a b/é.txt", secret=SECRET, expires_in=60, now=NOW))

    assert params["key"] == "a b/é.txt"
    assert params["exp"] == str(int(NOW.timestamp()) + 60)
    assert "=" not in params["sig"]  # urlsafe base64, unpadded
    assert "filename" not in params


def test_a_link_with_a_filename_verifies_and_keeps_it() -> None:
    query = sign_download("k", secret=SECRET, filename="model v2.tar.gz", now=NOW)
    params = _params(query)

    assert verify_download(params, secret=SECRET, now=NOW) == "k"
    assert params["filename"] == "model v2.tar.gz"


def test_a_link_is_valid_until_its_expiry_second() -> None:
    params = _params(sign_download("k", secret=SECRET, expires_in=60, now=NOW))

    assert verify_download(params, secret=SECRET, now=NOW + timedelta(seconds=60)) == "k"


def test_an_expired_link_is_refused() -> None:
    params = _params(sign_download("k", secret=SECRET, expires_in=60, now=NOW))

    with pytest.raises(PermissionDenied, match="expired"):
        verify_download(params, secret=SECRET, now=NOW + timedelta(seconds=61))


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("key", "runs/2/model.tar.gz"),
        ("exp", "99999999999"),
        ("filename", "evil.html"),
        ("sig", "A" * 43),
    ],
)
def test_a_tampered_link_is_refused(field: str, value: str) -> None:
    params = _params(
        sign_download("runs/1/model.tar.gz", secret=SECRET, filename="m.tar.gz", now=NOW)
    )
    params[field] = value

    with pytest.raises(PermissionDenied, match="signature is invalid"):
        verify_download(params, secret=SECRET, now=NOW)


def test_dropping_the_filename_invalidates_the_signature() -> None:
    params = _params(sign_download("k", secret=SECRET, filename="m.bin", now=NOW))
    del params["filename"]

    with pytest.raises(PermissionDenied):
        verify_download(params, secret=SECRET, now=NOW)


def test_a_link_signed_with_another_secret_is_refused() -> None:
    params = _params(sign_download("k", secret="another-secret", now=NOW))  # noqa: S106

    with pytest.raises(PermissionDenied):
        verify_download(params, secret=SECRET, now=NOW)


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"key": "k", "exp": "1"},
        {"key": "k", "sig": "x"},
        {"exp": "1", "sig": "x"},
        {"key": "k", "exp": "soon", "sig": "x"},
        {"key": "k", "exp": "-1", "sig": "x"},
        {"key": "k", "exp": "1" * 40, "sig": "x"},
        {"key": "k", "exp": "\u00b2", "sig": "x"},
        {"key": "k", "exp": "1", "sig": "\u00e9"},
    ],
)
def test_an_incomplete_or_malformed_link_is_refused(params: dict[str, str]) -> None:
    with pytest.raises(PermissionDenied):
        verify_download(params, secret=SECRET, now=NOW)


def test_verification_uses_the_clock_by_default() -> None:
    params = _params(sign_download("k", secret=SECRET, expires_in=60))

    assert verify_download(params, secret=SECRET) == "k"


def test_signing_rejects_a_bad_key_an_empty_secret_and_a_naive_time() -> None:
    with pytest.raises(InvalidArtifactKey):
        sign_download("../etc/passwd", secret=SECRET)
    with pytest.raises(ValueError, match="secret"):
        sign_download("k", secret="")
    with pytest.raises(ValueError, match="timezone-aware"):
        sign_download("k", secret=SECRET, now=datetime(2030, 1, 1))  # noqa: DTZ001
    with pytest.raises(ValueError, match="positive"):
        sign_download("k", secret=SECRET, expires_in=0)
    with pytest.raises(ValueError, match="control character"):
        sign_download("k", secret=SECRET, filename="a\r\nSet-Cookie: x")


def test_a_refusal_is_a_403() -> None:
    with pytest.raises(PermissionDenied) as raised:
        verify_download({}, secret=SECRET)

    assert raised.value.status == 403
