"""After a restart of the Docker engine, and of the studio with it, endpoints come back to
InService by themselves, and the data plane routes to the new containers.

One test, with the real engine, a real Celery worker and the studio's web server as a real
process: it stops the engine (`scripts/ensure-docker --stop`, which needs root and an engine
that script started, as in CI), checks what the studio shows meanwhile, kills the worker and
the web server as a reboot of the host would, then starts the engine and the studio again. The
engine is started again whatever happens (other tests use it next); a machine where it cannot
be restarted skips the test, or fails it under CI=true.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from django.conf import settings

from compute.labels import LABEL_INSTANCE, instance_label
from compute.runtime import get_runtime
from compute.runtime.base import ContainerNotFound
from endpoints.models import Endpoint, EndpointEvent, EndpointInstance, EndpointStatus
from endpoints.models import InstanceStatus as Status
from endpoints.services.fleet import containers, health
from tests.endpoints.conftest import approved_package, wait_for_endpoint
from tests.factories import make_team, make_token, make_user
from tests.support import component_missing, free_port
from tests.workers import Worker, database_url_for_children

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
ENSURE_DOCKER = ROOT / "scripts" / "ensure-docker"


def _ensure_docker(*args: str) -> subprocess.CompletedProcess[str]:
    # The daemon outlives this session: its log goes where the machine's goes, not into the
    # session's temporary STUDIOLO_HOME.
    log = os.environ.get("STUDIOLO_DOCKERD_LOG") or str(Path.home() / ".studiolo" / "dockerd.log")
    return subprocess.run(
        [str(ENSURE_DOCKER), *args],
        check=False,
        capture_output=True,
        text=True,
        timeout=180,
        env={**os.environ, "STUDIOLO_DOCKERD_LOG": log},
    )


@contextlib.contextmanager
def engine_stopped() -> Iterator[list[str]]:
    """The Docker engine is stopped inside the block, and answers again after it, even when
    the block fails. Yields a list that receives the script's reports (stopped, started)."""
    if os.geteuid() != 0:
        component_missing("restarting the Docker engine needs root (scripts/ensure-docker --stop)")
    stopped = _ensure_docker("--stop")
    if stopped.returncode != 0:
        _ensure_docker()  # it refuses before stopping anything; make sure anyway
        component_missing(f"cannot restart the Docker engine here: {stopped.stderr.strip()}")
    reports = [stopped.stdout.strip()]
    try:
        yield reports
    finally:
        started = _ensure_docker()
        if started.returncode != 0:
            pytest.fail(f"the Docker engine did not start again:\n{started.stderr}")
        reports.append(started.stdout.strip())


class WebProcess:
    """`uvicorn studio.asgi` (UI, API and the data plane) as a child process, as `studiolo
    web` runs it, against the test database."""

    def __init__(self, log_path: Path) -> None:
        self.log_path = log_path
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "tests.settings",
            "STUDIOLO_HOME": str(settings.STUDIOLO_HOME),
            "DATABASE_URL": database_url_for_children(),
            "REDIS_URL": settings.REDIS_URL,
            "RUNTIME": "docker",
            "SECRET_KEY": settings.SECRET_KEY,
        }
        command = [sys.executable, "-m", "uvicorn", "studio.asgi:application"]
        self.process = subprocess.Popen(
            [*command, "--host", "127.0.0.1", "--port", str(self.port), "--lifespan", "on"],
            cwd=ROOT,
            env=env,
            stdout=open(self.log_path, "ab"),  # noqa: SIM115 - the child owns it
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(httpx.HTTPError):
                httpx.get(f"{self.url}/healthz", timeout=2)
                return
            if self.process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the web server did not start:\n{self.log_path.read_text()[-3000:]}")
            time.sleep(0.1)

    def kill(self) -> None:
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.kill()


class Checker:
    """What beat and a worker do in production: check every instance, here every half
    second, in this process."""

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        from django.db import connection

        while not self._stop.wait(0.5):
            health.check_endpoints()
        connection.close()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(90)


def _wait(condition: Callable[[], bool], message: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(message)
        time.sleep(0.1)


@pytest.mark.parametrize("runtime_name", ["docker"], indirect=True)
def test_endpoints_come_back_in_service_after_the_engine_and_the_studio_restart(
    worker: Worker, use_runtime: str, tmp_path: Path, capsys: Any
) -> None:
    team = make_team("restart")
    scientist = make_user(team, role="scientist")
    approved_package(team, scientist, make_user(team, role="approver"), tag="v1")
    token = make_token(scientist)
    web = WebProcess(tmp_path / "web.log")
    checker = Checker()
    endpoint_id: int | None = None
    web.start()
    try:
        api = httpx.Client(
            base_url=web.url, headers={"Authorization": f"Bearer {token}"}, timeout=30
        )

        def invoke() -> httpx.Response:
            return api.post(
                "/endpoints/echo/invocations",
                content=b"1,2\n",
                headers={"Content-Type": "text/csv"},
            )

        response = api.post(
            "/api/v1/endpoints", json={"name": "echo", "model": "echo/1", "instance_count": 2}
        )
        assert response.status_code == 201, response.text
        endpoint_id = Endpoint.objects.get(name="echo").pk
        endpoint = wait_for_endpoint(endpoint_id, lambda e: e.status != EndpointStatus.CREATING)
        assert endpoint.status == EndpointStatus.IN_SERVICE, endpoint.failure_reason
        assert invoke().status_code == 200
        before = {i.pk: (i.container_id, i.port or 0) for i in endpoint.instances.all()}
        assert len(before) == 2

        with engine_stopped() as engine_reports:
            stopped_at = time.monotonic()
            checker.start()  # from here: checks while dockerd was stopping would race it
            # The studio still runs: the instances stop answering and leave rotation; the
            # endpoint stays InService, showing no healthy instance, and nothing fails.
            _wait(
                lambda: (
                    EndpointInstance.objects.filter(
                        endpoint_id=endpoint_id, status=Status.UNHEALTHY
                    ).count()
                    == 2
                ),
                "the instances were not taken out of rotation while the engine was away",
                timeout=30,
            )
            out_of_rotation_after = time.monotonic() - stopped_at
            endpoint.refresh_from_db()
            assert endpoint.status == EndpointStatus.IN_SERVICE
            assert endpoint.failure_reason == ""
            for instance in endpoint.instances.all():
                assert "the Docker engine is unreachable" in instance.message
            time.sleep(containers.OUT_OF_ROTATION_SECONDS)  # the data plane's routing cache
            assert invoke().status_code == 503
            # Then the studio goes down too, as in a reboot of the host.
            checker.stop()
            worker.kill()
            web.kill()
        engine_back_at = time.monotonic()

        worker.start()
        web.start()
        checker.start()

        def replaced() -> bool:
            healthy = set(
                EndpointInstance.objects.filter(endpoint_id=endpoint_id).values_list("pk", "status")
            )
            return len(healthy) == 2 and all(
                status == Status.HEALTHY and pk not in before for pk, status in healthy
            )

        _wait(replaced, "the dead instances were not replaced", timeout=90)
        healthy_after = time.monotonic() - engine_back_at
        _wait(lambda: invoke().status_code == 200, "the data plane did not route to them")
        serving_after = time.monotonic() - engine_back_at

        answers = [invoke() for _ in range(12)]
        assert all(answer.status_code == 200 for answer in answers), answers[-1].text
        assert len({answer.text.split(":")[1] for answer in answers}) == 2  # both serve

        # The studio found its containers again by their labels: exactly the new instances'
        # run, and the old ones are gone.
        after = {
            i.container_id: i.port or 0
            for i in EndpointInstance.objects.filter(endpoint_id=endpoint_id)
        }
        runtime = get_runtime()
        labelled = runtime.find(
            {containers.LABEL_ENDPOINT_ID: str(endpoint_id), LABEL_INSTANCE: instance_label()}
        )
        assert {state.id for state in labelled} == set(after)
        assert all(state.running for state in labelled)
        for container_id, _ in before.values():
            with pytest.raises(ContainerNotFound):
                runtime.inspect(container_id)
        assert runtime.image_exists("studiolo/sklearn:latest")  # same data root

        # Never Failed; every change recorded, by the system.
        events = list(EndpointEvent.objects.filter(endpoint_id=endpoint_id))
        changes = [(e.from_status, e.to_status) for e in events if e.to_status]
        assert changes == [("", "Creating"), ("Creating", "InService")]
        notes = [e for e in events if not e.to_status]
        assert all(e.actor_name == "system" and e.created_at is not None for e in notes)
        assert sum("is unhealthy" in e.message for e in notes) == 2
        assert sum(e.message.startswith("Replaced") for e in notes) == 2
        assert Endpoint.objects.get(pk=endpoint_id).status == EndpointStatus.IN_SERVICE

        with capsys.disabled():
            print(  # noqa: T201 - the timings, for whoever runs it with the engine to restart
                f"\nengine restart: out of rotation {out_of_rotation_after:.1f} s after the "
                f"engine stopped; engine back -> instances healthy {healthy_after:.1f} s, "
                f"-> invocations answered {serving_after:.1f} s; ports before "
                f"{sorted(p for _, p in before.values())}, after {sorted(after.values())}\n"
                + "\n".join(engine_reports)
            )
    finally:
        checker.stop()
        web.stop()
        if endpoint_id is not None:
            with contextlib.suppress(Exception):  # the engine may be why the test failed
                runtime = get_runtime()
                labels = {
                    containers.LABEL_ENDPOINT_ID: str(endpoint_id),
                    LABEL_INSTANCE: instance_label(),
                }
                for state in runtime.find(labels):
                    runtime.remove(state.id)
