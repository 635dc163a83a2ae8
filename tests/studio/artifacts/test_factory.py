"""store_from_url: the ARTIFACT_STORE setting."""

from __future__ import annotations

from pathlib import Path

import pytest

from studio.artifacts import LocalArtifactStore, S3ArtifactStore, store_from_url


def _local(url: str) -> LocalArtifactStore:
    store = store_from_url(url, s3_endpoint_url=None, region=None)
    assert isinstance(store, LocalArtifactStore)
    return store


def _s3(url: str, endpoint: str | None = None, region: str | None = None) -> S3ArtifactStore:
    store = store_from_url(url, s3_endpoint_url=endpoint, region=region)
    assert isinstance(store, S3ArtifactStore)
    return store


def test_a_plain_absolute_path_is_a_local_store(tmp_path: Path) -> None:
    assert _local(str(tmp_path / "artifacts")).root == (tmp_path / "artifacts").resolve()


def test_a_relative_path_is_resolved_against_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)

    assert _local("data/artifacts").root == (tmp_path / "data" / "artifacts").resolve()


def test_a_home_relative_path_is_expanded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))

    assert _local("~/artifacts").root == (tmp_path / "artifacts").resolve()


def test_a_file_url_is_a_local_store(tmp_path: Path) -> None:
    assert _local(f"file://{tmp_path}/a").root == (tmp_path / "a").resolve()
    assert _local(f"file://localhost{tmp_path}/a").root == (tmp_path / "a").resolve()


def test_an_s3_url_with_a_bucket_only() -> None:
    store = _s3("s3://my-bucket")

    assert (store.bucket, store.prefix) == ("my-bucket", "")


def test_an_s3_url_with_a_prefix_and_endpoint() -> None:
    store = _s3("s3://my-bucket/studiolo/artifacts/", "http://127.0.0.1:9000", "eu-west-1")

    assert (store.bucket, store.prefix) == ("my-bucket", "studiolo/artifacts")
    assert store.endpoint_url == "http://127.0.0.1:9000"
    assert store.region == "eu-west-1"
    assert store.describe() == "s3://my-bucket/studiolo/artifacts at http://127.0.0.1:9000"


def test_empty_endpoint_and_region_settings_mean_the_defaults() -> None:
    store = _s3("s3://b", "", "")

    assert (store.endpoint_url, store.region) == (None, None)


@pytest.mark.parametrize(
    "url",
    [
        "",
        "   ",
        "gs://bucket/prefix",
        "http://127.0.0.1:9000/bucket",
        "file://otherhost/data",
        "file:relative",
        "file:/data",
        "s3://",
        "s3:///prefix",
        "s3:bucket",
        "s3://bucket/a/../b",
        "s3://bucket/a//b",
    ],
)
def test_anything_else_is_a_one_line_error_naming_the_setting(url: str) -> None:
    with pytest.raises(ValueError, match="ARTIFACT_STORE") as raised:
        store_from_url(url, s3_endpoint_url=None, region=None)

    assert "\n" not in str(raised.value)
