"""`/healthz` and `/readyz`: liveness, and each dependency checked with a JSON verdict."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.test import Client

from studio import embedded_redis

pytestmark = pytest.mark.django_db


@pytest.fixture
def own_redis(settings: Any) -> Iterator[object]:
    """A redis-server of this test's own, so stopping it hurts no other test."""
    home = Path(settings.STUDIOLO_HOME)
    socket_path = home / "run" / "readyz-test.sock"
    process = embedded_redis.start(socket_path, home / "readyz-redis")
    settings.REDIS_URL = f"unix://{socket_path}"
    yield process
    embedded_redis.stop(process)


def test_healthz_needs_no_login(client: Client) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readyz_reports_every_component_and_names_the_runtime(
    client: Client, own_redis: object
) -> None:
    response = client.get("/readyz")
    body = response.json()
    assert response.status_code == 200, body
    assert body["status"] == "ok"
    assert body["failed"] == []
    assert set(body["checks"]) == {"database", "redis", "artifact_store", "runtime"}
    assert body["runtime"] in ("docker", "process")
    assert body["checks"]["runtime"]["detail"].startswith(body["runtime"])


def test_readyz_reports_a_stopped_redis_with_503(client: Client, own_redis: object) -> None:
    assert client.get("/readyz").status_code == 200
    embedded_redis.stop(own_redis)  # type: ignore[arg-type]
    response = client.get("/readyz")
    body = response.json()
    assert response.status_code == 503
    assert body["status"] == "unavailable"
    assert body["failed"] == ["redis"]
    assert body["checks"]["redis"]["ok"] is False
    assert body["checks"]["database"]["ok"] is True


def test_readyz_reports_an_unusable_artifact_store(
    client: Client, settings: Any, tmp_path: Path
) -> None:
    from studio.artifacts import get_store

    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    settings.ARTIFACT_STORE = str(blocker / "artifacts")
    get_store.cache_clear()
    try:
        body = client.get("/readyz").json()
    finally:
        get_store.cache_clear()
    assert "artifact_store" in body["failed"]


def test_pages_and_api_need_login_but_probes_do_not(client: Client) -> None:
    assert client.get("/").status_code == 302
    assert client.get("/api/v1/me").status_code == 401
    assert client.get("/api/v1/audit").status_code == 401
    assert client.get("/api/v1/schema/").status_code == 401
    assert client.get("/login/").status_code == 200
