"""Fixtures every test can use: real Redis, a real ASGI server, a real Docker engine."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from tests.support import component_missing, free_port
from tests.workers import runtime_name, use_runtime, worker  # noqa: F401 - fixtures for every test


@pytest.fixture(scope="session", autouse=True)
def _redis_for_tests() -> Iterator[None]:
    """Start the embedded redis-server when REDIS_URL is unset (CI sets it to the
    machine's Redis). The channel layer, health checks and Celery all need one."""
    try:
        from django.conf import settings
    except ImportError:  # toolkit tests run without Django
        yield
        return
    if not settings.configured or not settings.REDIS_EMBEDDED:
        yield
        return
    from studio import embedded_redis

    socket_path = settings.STUDIOLO_HOME / "run" / "redis.sock"
    process = embedded_redis.start(socket_path, settings.STUDIOLO_HOME / "redis")
    yield
    embedded_redis.stop(process)


@pytest.fixture(scope="session", autouse=True)
def _nothing_left_running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """At the end of the run, after the workers stopped: remove what the runtimes started in
    it, then fail if a process the process runtime started is still alive (tests/leftovers.py)."""
    yield
    try:
        from django.conf import settings
    except ImportError:  # toolkit tests run without Django
        return
    if not settings.configured:
        return
    from tests import leftovers

    home = settings.STUDIOLO_HOME
    leftovers.remove_this_runs_containers(home)
    survivors = leftovers.surviving_processes(home, tmp_path_factory.getbasetemp())
    if survivors:
        pytest.fail(
            "processes started by the process runtime in this run outlived it (killed now):\n"
            + leftovers.describe_and_kill(survivors),
            pytrace=False,
        )


@pytest.fixture(scope="session")
def redis_available() -> None:
    from studio.health import redis_client

    client = redis_client()
    try:
        client.ping()
    except Exception as exc:
        component_missing(f"Redis not reachable: {exc}")
    finally:
        client.close()


@pytest.fixture(scope="session")
def docker_engine() -> None:
    """A live Docker engine; fails in CI when absent, skips elsewhere."""
    from compute.runtime import docker_status

    status = docker_status()
    if not status.ok:
        component_missing(f"Docker engine: {status.detail}")


@pytest.fixture
def asgi_server(transactional_db: None, redis_available: None) -> Iterator[str]:
    """uvicorn serving studio.asgi (HTTP + websockets) in a thread, against the test
    database. Yields the base URL."""
    import uvicorn

    from endpoints.uvicorn_protocol import UVICORN_HTTP
    from studio.asgi import application, django_asgi_app

    port = free_port()
    config = uvicorn.Config(
        application,
        host="127.0.0.1",
        port=port,
        lifespan="off",
        log_level="warning",
        http=UVICORN_HTTP,  # as `studiolo web` runs it: the data plane's fast path included
        proxy_headers=False,  # likewise: studio.asgi decides whose forwarded headers count
    )
    server = uvicorn.Server(config)
    # Server.run only installs signal handlers in the main thread, so a thread is safe.
    thread = threading.Thread(target=server.run, name="asgi-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            pytest.fail("the ASGI test server did not start")
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)
    # The pooled threads keep their database connections; close them before the test
    # database is flushed or dropped.
    django_asgi_app.close_connections()
