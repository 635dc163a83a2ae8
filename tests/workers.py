"""Real Celery worker processes for end-to-end tests (jobs, endpoints), one set per runtime.

A set is what a deployment runs (`studiolo up` starts the same): a control-plane worker
(endpoints, reconciliation, webhooks, the heartbeat; threads) and a job worker (one process
per running job), with the very command lines of `studio.cli.server.worker_argv`. The fixtures
are made available to every test by `tests/conftest.py`; defined once, so that only one set
per runtime exists in a session (two would take each other's tasks).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.db import connection

from studio.cli.server import WORKER_ROLES, beat_argv, worker_argv, worker_queues
from tests.support import component_missing

ROOT = Path(__file__).resolve().parents[1]
START_TIMEOUT = 60.0


def database_url_for_children() -> str:
    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    user = db.get("USER") or "postgres"
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    return f"postgres://{user}{password}@{db.get('HOST') or '127.0.0.1'}:{db.get('PORT') or 5432}/{db['NAME']}"


def children_env(runtime: str, **extra: str) -> dict[str, str]:
    """The environment of a worker or beat started by the tests: the test settings, database,
    Redis (and its per-run key prefix, through STUDIOLO_HOME) and runtime."""
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="tests.settings",
        STUDIOLO_HOME=str(settings.STUDIOLO_HOME),
        DATABASE_URL=database_url_for_children(),
        REDIS_URL=settings.REDIS_URL,
        RUNTIME=runtime,
        SECRET_KEY=settings.SECRET_KEY,
    )
    env.update(extra)  # may replace any of the above: a second studio has a home of its own
    return env


class Component:
    """One Celery process (a worker of one role, or beat) started by the tests, leader of its
    own process group, its output appended to `log_path`."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log_path: Path) -> None:
        self.name = name
        self.argv = argv
        self.env = env
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, ready: bytes | None = b"ready.") -> None:
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                self.argv,
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        if ready is None:
            return
        deadline = time.monotonic() + START_TIMEOUT
        while ready not in self.log_path.read_bytes()[offset:]:
            if self.process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"{self.name} did not start:\n{self.log_path.read_text()[-3000:]}")
            time.sleep(0.1)

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def kill(self) -> None:
        """SIGKILL the whole process group, as a crash or an OOM of the host would."""
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def kill_main(self) -> None:
        """SIGKILL the main process alone; its pool processes die with it (Celery asks the
        kernel for that), whatever they were running."""
        assert self.process is not None
        self.process.kill()
        self.process.wait()

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        # Its pool processes leave after it: wait for them (they hold database connections
        # the test database's teardown must not find open), then kill what stays.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                os.killpg(self.process.pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.1)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)


class Worker:
    """The control-plane worker and the job worker of one runtime, as a deployment runs them.

    `kill`, `start` and `stop` act on both; `control` and `jobs` on one."""

    def __init__(self, runtime: str, log_dir: Path, **env: str) -> None:
        self.runtime = runtime
        self.env = children_env(runtime, **env)
        self.log_dir = log_dir
        self.processes = {
            role: Component(
                f"{role} worker",
                worker_argv(
                    role,
                    log_level="INFO",
                    queues=worker_queues(role),
                    hostname=f"test-{role}-{runtime}-{os.getpid()}@%h",
                ),
                self.env,
                log_dir / f"{runtime}-{role}.log",
            )
            for role in WORKER_ROLES
        }

    @property
    def control(self) -> Component:
        return self.processes["control"]

    @property
    def jobs(self) -> Component:
        return self.processes["jobs"]

    def start(self) -> None:
        for process in self.processes.values():
            process.start()

    def kill(self) -> None:
        for process in self.processes.values():
            process.kill()

    def stop(self) -> None:
        for process in self.processes.values():
            process.stop()


def beat(runtime: str, log_dir: Path, **env: str) -> Component:
    """`celery beat` with the studio's schedules (studio/schedules.py), as deployed."""
    argv = beat_argv(log_level="INFO", schedule=log_dir / "celerybeat-schedule")
    return Component("beat", argv, children_env(runtime, **env), log_dir / f"{runtime}-beat.log")


def purge_queues() -> None:
    from studio.health import redis_client

    prefix = str(settings.CELERY_BROKER_TRANSPORT_OPTIONS.get("global_keyprefix", ""))
    client = redis_client()
    try:
        client.delete(*(prefix + queue for role in WORKER_ROLES for queue in worker_queues(role)))
    finally:
        client.close()


@pytest.fixture(scope="session", params=["docker", "process"])
def runtime_name(request: pytest.FixtureRequest) -> str:
    if request.param == "docker":
        request.getfixturevalue("docker_engine")
        from compute.runtime.docker import DockerRuntime

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
        purge_queues()
        worker = Worker(runtime_name, tmp_path_factory.mktemp("worker"))
        worker.start()
    yield worker
    worker.stop()


@pytest.fixture
def use_runtime(runtime_name: str, settings: Any) -> str:
    """The test process (API, services) uses the same runtime as the worker."""
    settings.RUNTIME = runtime_name
    return runtime_name
