"""The artifact store: where datasets, model archives, logs and outputs live.

Code elsewhere in Studiolo uses `get_store()` and the `ArtifactStore` interface only; which
backend is behind it (a local folder or S3) is configuration, `ARTIFACT_STORE`.
"""

from __future__ import annotations

import functools

from studio.artifacts.base import ArtifactStore, ObjectInfo
from studio.artifacts.errors import (
    ArtifactNotFound,
    ArtifactStoreError,
    ArtifactStoreUnavailable,
    InvalidArtifactKey,
)
from studio.artifacts.factory import store_from_url
from studio.artifacts.keys import validate_key, validate_prefix
from studio.artifacts.local import LocalArtifactStore
from studio.artifacts.s3 import S3ArtifactStore
from studio.artifacts.signing import sign_download, verify_download

__all__ = [
    "ArtifactNotFound",
    "ArtifactStore",
    "ArtifactStoreError",
    "ArtifactStoreUnavailable",
    "InvalidArtifactKey",
    "LocalArtifactStore",
    "ObjectInfo",
    "S3ArtifactStore",
    "get_store",
    "sign_download",
    "store_from_url",
    "validate_key",
    "validate_prefix",
    "verify_download",
]


@functools.cache
def get_store() -> ArtifactStore:
    """The store configured in Django settings, built once per process.

    Tests that change ARTIFACT_STORE call `get_store.cache_clear()`.
    """
    # Imported here so that the store itself stays usable (and testable) without Django.
    from django.conf import settings

    return store_from_url(
        settings.ARTIFACT_STORE,
        s3_endpoint_url=settings.S3_ENDPOINT_URL,
        region=settings.AWS_REGION,
    )
