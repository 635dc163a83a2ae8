"""Container runtimes for jobs and endpoints: `docker` (isolated) and `process` (local).

This module decides which one the configuration selects; the runtimes themselves live in
`compute.runtime.docker` and `compute.runtime.process`.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.conf import settings

if TYPE_CHECKING:
    from compute.runtime.base import Runtime


@dataclass(frozen=True)
class RuntimeStatus:
    name: str  # "docker" or "process"
    ok: bool
    detail: str


def docker_status(timeout: float = 3.0) -> RuntimeStatus:
    """Ask the Docker engine (DOCKER_HOST or the default socket) whether it answers."""
    import docker  # imported here: the process runtime must work without an engine
    from docker.errors import DockerException

    try:
        client = docker.from_env(timeout=timeout)
        try:
            version = client.version()
        finally:
            client.close()
    except DockerException as exc:
        return RuntimeStatus("docker", False, f"engine not reachable: {exc}")
    return RuntimeStatus("docker", True, f"Docker engine {version.get('Version', '?')}")


def runtime_status() -> RuntimeStatus:
    """The runtime the configuration selects, and whether it can run containers now.

    `auto` picks Docker when an engine answers and falls back to the unisolated process
    runtime otherwise; an explicit `docker` never falls back.
    """
    choice = settings.RUNTIME
    if choice == "process":
        return RuntimeStatus("process", True, "local processes (unisolated)")
    status = docker_status()
    if choice == "docker" or status.ok:
        return status
    return RuntimeStatus("process", True, f"local processes (unisolated); {status.detail}")


_cache_lock = threading.Lock()
_cached: tuple[int, str, Runtime] | None = None  # (pid, settings.RUNTIME, runtime)


def get_runtime() -> Runtime:
    """The runtime the configuration selects, made once per process.

    `auto` asks the engine once (per process) and settles on Docker or, when no engine
    answers, on the unisolated process runtime; `docker` always means Docker (its calls then
    raise RuntimeUnavailable while the engine is away). A forked child (Celery's prefork pool)
    makes its own: a Docker client's pooled sockets must not be shared across processes.
    """
    global _cached
    choice = settings.RUNTIME
    with _cache_lock:
        if _cached is not None and _cached[0] == os.getpid() and _cached[1] == choice:
            return _cached[2]
        runtime: Runtime
        if choice == "process" or (choice == "auto" and not docker_status().ok):
            from compute.runtime.process import ProcessRuntime

            runtime = ProcessRuntime()
        else:
            from compute.runtime.docker import DockerRuntime

            runtime = DockerRuntime()
        _cached = (os.getpid(), choice, runtime)
        return runtime
