"""A real Celery worker process for end-to-end tests (jobs, endpoints), one per runtime.

The fixtures are made available to every test by `tests/conftest.py`; defined once, so that
only one worker per runtime exists in a session (two would take each other's tasks).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.db import connection

from studio.cli.server import worker_queues
from tests.support import component_missing

ROOT = Path(__file__).resolve().parents[1]


def database_url_for_children() -> str:
    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    user = db.get("USER") or "postgres"
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    return f"postgres://{user}{password}@{db.get('HOST') or '127.0.0.1'}:{db.get('PORT') or 5432}/{db['NAME']}"


class Worker:
    """`celery worker` as a child process, consuming every queue of the studio (the default
    one, the endpoints' and every instance type's), as `studiolo worker` does."""

    def __init__(self, runtime: str, log_path: Path) -> None:
        self.runtime = runtime
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            DJANGO_SETTINGS_MODULE="tests.settings",
            STUDIOLO_HOME=str(settings.STUDIOLO_HOME),
            DATABASE_URL=database_url_for_children(),
            REDIS_URL=settings.REDIS_URL,
            RUNTIME=self.runtime,
            SECRET_KEY=settings.SECRET_KEY,
        )
        return env

    def start(self) -> None:
        queues = ",".join(worker_queues())
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "studio.celery",
                "worker",
                "--loglevel",
                "INFO",
                "--concurrency",
                "4",
                "--pool",
                "threads",
                "-Q",
                queues,
                "--hostname",
                f"test-{self.runtime}-{os.getpid()}@%h",
                "--without-gossip",
                "--without-mingle",
            ],
            cwd=ROOT,
            env=self.env(),
            stdout=open(self.log_path, "ab"),  # noqa: SIM115 - the child owns it
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 30
        while b"ready." not in self.log_path.read_bytes():
            if self.process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"celery worker did not start:\n{self.log_path.read_text()[-3000:]}")
            time.sleep(0.1)

    def kill(self) -> None:
        """SIGKILL the whole worker, as a crash or an OOM of the host would."""
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


def _purge_job_queues() -> None:
    from studio.health import redis_client

    prefix = settings.CELERY_BROKER_TRANSPORT_OPTIONS.get("global_keyprefix", "")
    client = redis_client()
    try:
        client.delete(*(prefix + queue for queue in worker_queues()))
    finally:
        client.close()


@pytest.fixture(scope="session", params=["docker", "process"])
def runtime_name(request: pytest.FixtureRequest) -> str:
    if request.param == "docker":
        request.getfixturevalue("docker_engine")
        from jobs.runtime.docker import DockerRuntime

        if not DockerRuntime().image_exists("studiolo/sklearn:latest"):
            component_missing("image studiolo/sklearn:latest (run scripts/build-images)")
    return str(request.param)


@pytest.fixture(scope="session")
def worker(
    runtime_name: str,
    django_db_setup: None,
    django_db_blocker: Any,
    redis_available: None,
    tmp_path_factory: Any,
) -> Iterator[Worker]:
    with django_db_blocker.unblock():
        _purge_job_queues()
        worker = Worker(runtime_name, tmp_path_factory.mktemp("worker") / f"{runtime_name}.log")
        worker.start()
    yield worker
    worker.stop()


@pytest.fixture
def use_runtime(runtime_name: str, settings: Any) -> str:
    """The test process (API, services) uses the same runtime as the worker."""
    settings.RUNTIME = runtime_name
    return runtime_name
