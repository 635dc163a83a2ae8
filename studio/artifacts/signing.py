"""Signed, expiring download links served by Studiolo itself ("presigned-ish" URLs).

The server streams the object (the store may not be reachable from the browser, and a
local folder has no URLs at all), so a link only has to prove that the server issued it
for this key, this file name, and until this time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
import unicodedata
from typing import TYPE_CHECKING
from urllib.parse import urlencode

from studio.artifacts.keys import validate_key
from studio.errors import PermissionDenied

if TYPE_CHECKING:
    from collections.abc import Mapping
    from datetime import datetime

# The secret is usually Django's SECRET_KEY, which signs other things too; deriving a key
# per purpose (as Django's salted_hmac does) keeps a signature from being valid elsewhere.
_PURPOSE = b"studiolo.artifacts.download.v1"
# Unix timestamps have 10 digits until the year 2286; anything longer is garbage.
_MAX_EXP_DIGITS = 12


def sign_download(
    key: str,
    *,
    secret: str,
    expires_in: int = 3600,
    filename: str | None = None,
    now: datetime | None = None,
) -> str:
    """Return the query string `key=...&exp=...[&filename=...]&sig=...` for a download link.

    `filename` (what the browser should save the file as) is covered by the signature, so
    nobody can reuse a link to serve the bytes under another name or type.
    """
    key = validate_key(key)
    if expires_in <= 0:
        raise ValueError(f"expires_in must be positive, not {expires_in}")
    if filename is not None and any(unicodedata.category(c) == "Cc" for c in filename):
        raise ValueError(f"download filename {filename!r} contains a control character")
    expires_at = int(_timestamp(now)) + expires_in
    params = {"key": key, "exp": str(expires_at)}
    if filename:
        params["filename"] = filename
    params["sig"] = _signature(secret, key, expires_at, filename)
    return urlencode(params)


def verify_download(params: Mapping[str, str], *, secret: str, now: datetime | None = None) -> str:
    """Return the key a download link grants, or raise PermissionDenied.

    `params` is the parsed query string (a Django QueryDict works). The file name, if any,
    is `params["filename"]`, trustworthy once this returns.
    """
    key = params.get("key") or ""
    expires_text = params.get("exp") or ""
    signature = params.get("sig") or ""
    filename = params.get("filename") or None
    if not key or not expires_text or not signature:
        raise PermissionDenied("download link is incomplete")
    if not (
        expires_text.isascii() and expires_text.isdigit() and len(expires_text) <= _MAX_EXP_DIGITS
    ):
        raise PermissionDenied("download link is malformed")
    expires_at = int(expires_text)
    expected = _signature(secret, key, expires_at, filename)
    # Constant-time comparison: no timing oracle for guessing a signature byte by byte.
    if not hmac.compare_digest(expected.encode(), signature.encode("utf-8", "surrogatepass")):
        raise PermissionDenied("download link signature is invalid")
    # Checked after the signature, so an expired-but-forged link reads as forged.
    if _timestamp(now) > expires_at:
        raise PermissionDenied("download link has expired")
    return validate_key(key)


def _signature(secret: str, key: str, expires_at: int, filename: str | None) -> str:
    if not secret:
        raise ValueError("a non-empty secret is required to sign download links")
    derived_key = hashlib.sha256(_PURPOSE + secret.encode("utf-8")).digest()
    # Keys cannot contain newlines (no control characters) and exp is digits, so the
    # fields cannot be shifted into one another; the file name comes last for that reason.
    message = f"{key}\n{expires_at}\n{filename or ''}".encode("utf-8", "surrogatepass")
    digest = hmac.new(derived_key, message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def _timestamp(now: datetime | None) -> float:
    if now is None:
        return time.time()
    if now.tzinfo is None:
        raise ValueError("now must be a timezone-aware datetime")
    return now.timestamp()
