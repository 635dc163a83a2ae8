"""Build the configured artifact store from the ARTIFACT_STORE setting."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

from studio.artifacts.local import LocalArtifactStore
from studio.artifacts.s3 import S3ArtifactStore

if TYPE_CHECKING:
    from studio.artifacts.base import ArtifactStore

# "scheme:" at the start; anything shaped like a URL is parsed as one, so that a typo like
# "file:/data" fails loudly instead of becoming a folder named "file:" in the cwd.
_URL_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):")


def store_from_url(url: str, *, s3_endpoint_url: str | None, region: str | None) -> ArtifactStore:
    """Return the store that ARTIFACT_STORE names.

    Accepted: a folder path (absolute, relative to the cwd, or starting with ~),
    `file:///absolute/path`, `s3://bucket` and `s3://bucket/prefix`. `s3_endpoint_url` and
    `region` only matter for S3. Anything else raises ValueError with a one-line message.
    """
    value = url.strip()
    scheme_match = _URL_SCHEME.match(value)
    if scheme_match is None:
        if not value:
            raise _bad_setting(url, "it is empty")
        return LocalArtifactStore(Path(value).expanduser())
    scheme = scheme_match.group(1).lower()
    rest = value[scheme_match.end() :]
    if not rest.startswith("//"):
        raise _bad_setting(url, f"a {scheme}: URL must start with {scheme}://")
    rest = rest[2:]
    if scheme == "file":
        host, slash, path = rest.partition("/")
        if host not in ("", "localhost") or not slash:
            raise _bad_setting(url, "file URLs must be file:///absolute/path")
        return LocalArtifactStore(Path("/" + path))
    if scheme == "s3":
        bucket, _, prefix = rest.partition("/")
        if not bucket:
            raise _bad_setting(url, "the S3 bucket name is missing")
        try:
            return S3ArtifactStore(
                bucket, prefix, endpoint_url=s3_endpoint_url or None, region=region or None
            )
        except ValueError as error:
            raise _bad_setting(url, str(error)) from None
    raise _bad_setting(url, f"unsupported scheme {scheme!r}")


def _bad_setting(url: str, reason: str) -> ValueError:
    return ValueError(
        f"ARTIFACT_STORE={url!r} is not usable ({reason}); expected a folder path, "
        "file:///absolute/path, s3://bucket or s3://bucket/prefix"
    )
