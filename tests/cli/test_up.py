"""`studiolo up` from a cold start: it serves, it works, and it leaves nothing behind.

Each test starts the real command in a bare environment (SQLite, the embedded Redis, the
process runtime) and checks the processes it made with psutil.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest
import redis

from studio.health import HEARTBEAT_KEY
from tests.cli.support import (
    Up,
    alive,
    clean_env,
    run_studiolo,
    short_home,
    studiolo_argv,
    wait_gone,
)
from tests.support import free_port

pytestmark = pytest.mark.slow

START_TIMEOUT = 60.0


@pytest.fixture
def home() -> Iterator[Path]:
    with short_home() as path:
        yield path


@pytest.fixture
def started(home: Path) -> Iterator[list[Up]]:
    """The `up` processes a test starts; whatever they left is killed at the end, so a
    failing test never leaks processes into the next one."""
    ups: list[Up] = []
    yield ups
    for up in ups:
        if up.process.poll() is None:
            up.known.extend(up.descendants())
            up.process.kill()
            up.process.wait()
        for leftover in up.known:
            if alive(leftover):  # psutil checks the start time: never a reused pid
                leftover.kill()


def start(started: list[Up], home: Path, **env: str) -> tuple[Up, float]:
    begun = time.monotonic()
    up = Up(home, free_port(), **env)
    started.append(up)
    up.wait_for(r"Studiolo is running at http://127\.0\.0\.1:\d+/", START_TIMEOUT)
    elapsed = time.monotonic() - begun
    up.known.extend(up.descendants())
    return up, elapsed


def login(up: Up, password: str) -> httpx.Response:
    with httpx.Client(base_url=up.url, follow_redirects=True, trust_env=False) as browser:
        form = browser.get("/login/")
        assert form.status_code == 200
        match = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.text)
        assert match, form.text
        return browser.post(
            "/login/",
            data={
                "username": "admin",
                "password": password,
                "csrfmiddlewaretoken": match.group(1),
            },
        )


def test_up_serves_a_working_studio_and_stops_leaving_no_process(
    home: Path, started: list[Up]
) -> None:
    up, startup = start(started, home)
    print(f"cold start to /healthz: {startup:.1f} s")  # noqa: T201 - reported by -s
    password = next(
        m.group(1)
        for line in up.lines
        if (m := re.match(r"Admin user: admin {3}password: (\S+) {3}\(shown once", line))
    )

    ready = httpx.get(f"{up.url}/readyz", trust_env=False)
    assert ready.status_code == 200, ready.text
    body = ready.json()
    assert body["runtime"] == "process"
    assert set(body["checks"]) == {"database", "redis", "artifact_store", "runtime"}
    assert all(check["ok"] for check in body["checks"].values()), body
    assert "(embedded)" in body["checks"]["redis"]["detail"]

    dashboard = login(up, password)
    assert dashboard.status_code == 200
    assert dashboard.url.path == "/"

    # A second `up` on the same data folder is refused while this one runs.
    second = run_studiolo("up", "--port", str(free_port()), env=up.env, timeout=30)
    assert second.returncode == 1
    assert "already running" in second.stderr

    # Beat sends the heartbeat every 10 s and the worker records it: both are alive.
    socket_path = home / "run" / "redis.sock"
    client = redis.Redis(unix_socket_path=str(socket_path))
    deadline = time.monotonic() + 20
    while client.get(HEARTBEAT_KEY) is None and time.monotonic() < deadline:
        time.sleep(0.25)
    client.close()
    doctor = run_studiolo("doctor", "--json", env=up.env)
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr
    assert '"name": "worker",\n      "ok": true' in doctor.stdout

    processes = up.descendants()
    names = " ".join(" ".join(p.cmdline()) for p in processes)
    assert "uvicorn" in names
    assert "redis-server" in names
    # beat, the control-plane worker (threads), the job worker and its two pool processes
    assert names.count("celery") >= 5
    assert "--pool threads --concurrency 8 -Q default,endpoints " in names
    assert "--pool prefork --concurrency 2 -Q jobs.ml.local.small," in names  # one per type

    up.process.send_signal(signal.SIGINT)
    assert up.process.wait(timeout=30) == 0
    assert wait_gone(processes, timeout=2) == []
    assert not (home / "run" / "up.lock").exists()
    assert not socket_path.exists()


def test_children_die_with_a_killed_up_and_the_next_up_cleans_the_rest(
    home: Path, started: list[Up]
) -> None:
    up, _ = start(started, home)
    processes = up.descendants()
    redis_server = next(p for p in processes if "redis-server" in p.name())
    supervised = [p for p in processes if p.pid != redis_server.pid]

    os.kill(up.process.pid, signal.SIGKILL)
    up.process.wait(timeout=5)
    # PR_SET_PDEATHSIG: the kernel sends SIGTERM to each child, and they shut down.
    assert wait_gone(supervised, timeout=10) == []

    # studio.embedded_redis starts redis-server without a parent-death signal, so it may
    # outlive a SIGKILLed `up`; the next `up` on the data folder stops it before starting.
    again, _ = start(started, home)
    assert not alive(redis_server)
    processes = again.descendants()
    again.process.send_signal(signal.SIGTERM)
    assert again.process.wait(timeout=30) == 0
    assert wait_gone(processes, timeout=2) == []


def test_a_child_that_dies_is_started_again_and_the_others_carry_on(
    home: Path, started: list[Up]
) -> None:
    up, _ = start(started, home)
    processes = up.descendants()
    web = next(p for p in processes if "uvicorn" in " ".join(p.cmdline()))
    others = [p for p in processes if p.pid != web.pid]
    web.kill()
    up.wait_for(
        r"studiolo: web exited unexpectedly \(killed by SIGKILL; .*starting it again in 1 s", 10
    )
    up.wait_for(r"studiolo: web started again \(pid \d+\)", 10)
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        try:
            if httpx.get(f"{up.url}/healthz", trust_env=False).status_code == 200:
                break
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, "the web server did not come back"
        time.sleep(0.2)
    assert all(alive(p) for p in others), "a death took other processes with it"
    assert up.process.poll() is None

    processes = up.descendants()
    up.process.send_signal(signal.SIGTERM)
    assert up.process.wait(timeout=30) == 0
    assert wait_gone(processes, timeout=2) == []
    assert not (home / "run" / "up.lock").exists()


def test_single_components_become_the_server_they_run(home: Path) -> None:
    """`web` and `worker` exec their command: same pid, so signals reach uvicorn and Celery."""
    from studio import embedded_redis

    socket_path = home / "run" / "redis.sock"
    redis_server = embedded_redis.start(socket_path, home / "redis")
    env = clean_env(home, REDIS_URL=f"unix://{socket_path}")
    port = free_port()
    components: list[subprocess.Popen[bytes]] = []
    try:
        migrate = run_studiolo("migrate", env=env)
        assert migrate.returncode == 0, migrate.stderr
        for argv in (("web", "--port", str(port)), ("worker", "--concurrency", "1")):
            components.append(
                subprocess.Popen(
                    studiolo_argv(*argv),
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
        web, worker = components
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", trust_env=False).is_success:
                    break
            except httpx.TransportError:
                pass
            assert web.poll() is None, "web exited"
            assert time.monotonic() < deadline, "web did not answer"
            time.sleep(0.1)
        assert "uvicorn" in psutil.Process(web.pid).cmdline()
        assert "-Q" in psutil.Process(worker.pid).cmdline()
        for component in components:
            component.send_signal(signal.SIGTERM)
        # A graceful stop: uvicorn re-raises the SIGTERM it handled once it has shut down.
        assert web.wait(timeout=15) in (0, -signal.SIGTERM)
        assert worker.wait(timeout=15) in (0, -signal.SIGTERM)
    finally:
        for component in components:
            if component.poll() is None:
                component.kill()
                component.wait()
        embedded_redis.stop(redis_server)


def test_auto_runtime_is_settled_once_for_every_process(home: Path, started: list[Up]) -> None:
    # No engine at this address: `auto` settles on the process runtime, for every child, so a
    # child (re)started later never decides otherwise on its own.
    missing = f"unix://{home}/no-docker.sock"
    up, _ = start(started, home, RUNTIME="auto", DOCKER_HOST=missing)

    assert any(
        line.startswith("Runtime: process (") and "RUNTIME=auto" in line for line in up.lines
    ), up.lines
    children = [
        p
        for p in up.descendants()
        if "uvicorn" in " ".join(p.cmdline()) or "celery" in " ".join(p.cmdline())
    ]
    assert children
    assert {p.environ().get("RUNTIME") for p in children} == {"process"}
    ready = httpx.get(f"{up.url}/readyz", trust_env=False)
    assert ready.json()["runtime"] == "process"
