from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from studio.artifacts import LocalArtifactStore, S3ArtifactStore
from tests.fixtures.s3 import (
    REGION,
    closed_local_port,
    moto_server,  # noqa: F401 - a fixture, used by s3_store
    s3_store,  # noqa: F401 - a fixture, used by store
    use_fake_aws_environment,
)

if TYPE_CHECKING:
    from pathlib import Path

    from studio.artifacts import ArtifactStore


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ArtifactStore:
    """Each backend in turn: every test using this runs against both."""
    if request.param == "local":
        return LocalArtifactStore(tmp_path / "store")
    s3: ArtifactStore = request.getfixturevalue("s3_store")
    return s3


@pytest.fixture
def unreachable_s3_store(monkeypatch: pytest.MonkeyPatch) -> S3ArtifactStore:
    """An S3 store whose endpoint has nothing listening: any request fails at once."""
    use_fake_aws_environment(monkeypatch)
    return S3ArtifactStore(
        "studiolo-test",
        "some/prefix",
        endpoint_url=f"http://127.0.0.1:{closed_local_port()}",
        region=REGION,
        connect_timeout=1,
        max_attempts=1,
    )


@pytest.fixture(params=["local", "s3"])
def offline_store(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> ArtifactStore:
    """A store on which any I/O would fail or leave a trace.

    Local: its root does not exist yet (a write would create it). S3: nothing listens at its
    endpoint (a request would raise ArtifactStoreUnavailable, not InvalidArtifactKey).
    """
    if request.param == "local":
        return LocalArtifactStore(tmp_path / "never-created")
    s3: ArtifactStore = request.getfixturevalue("unreachable_s3_store")
    return s3
